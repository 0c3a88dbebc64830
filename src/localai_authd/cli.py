"""authctl: manage localai-authd's keys over its control socket.

Typed by hand and used in scripts, so it starts fast: click, the stdlib control client and
pure modules only -- never aiohttp, keyring or cryptography (a test holds it to that).
Every failure is one line, ``authctl: <reason>``, on stderr, with an exit code from the
table in ``authctl --help``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import click
from click.shell_completion import CompletionItem

from . import __version__
from .control.client import DEFAULT_SOCKET, ControlClient, key_path
from .durations import parse_duration
from .errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE, AuthdError
from .keys.model import SCOPES

EPILOG = """\b
Exit codes:
  0   success
  1   any other failure
  2   bad usage: unknown option, or an invalid name, scope, duration or field
  3   no such key
  4   conflict: the name is taken, or the key cannot be rotated (revoked or expired)
  69  the daemon cannot be reached (is it running?), or its keyring is unavailable
  70  internal error in the daemon (its log has the details)
  77  permission denied: run as root or as a member of the admin group
  78  reload refused: the configuration on disk is invalid

\b
The socket is --socket PATH, else $LOCALAI_AUTHD_SOCKET, else
/run/localai-authd/control.sock. Shell completion (bash; zsh and fish likewise):
  eval "$(_AUTHCTL_COMPLETE=bash_source authctl)"
"""
ONCE = "This secret will not be shown again: store it now."
MAX_SECRET_CHARS = 4096  # the daemon accepts far less; just don't read an endless pipe


class Failure(click.ClickException):
    """Printed as exactly one line, ``authctl: <reason>``, with a documented exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(" ".join(message.split()))
        # click declares exit_code a ClassVar, but reads it from the instance it catches.
        vars(self)["exit_code"] = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"authctl: {self.format_message()}", file=file, err=True)


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """Turn click's multi-line usage errors and our AuthdErrors into a :class:`Failure`."""
    try:
        yield
    except (Failure, click.exceptions.NoArgsIsHelpError):
        raise  # bare `authctl` prints its help, as click does
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        raise Failure(e.format_message().rstrip(".") + hint, EXIT_USAGE) from e
    except click.Abort as e:
        raise Failure("aborted", EXIT_FAILURE) from e
    except AuthdError as e:
        raise Failure(e.message, e.exit_code) from e


class _Authctl(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line():
            return super().invoke(ctx)


@dataclass(frozen=True)
class _State:
    client: ControlClient
    as_json: bool


class _Duration(click.ParamType[str, Any]):
    """Checked here for a quick error naming the option; sent to the daemon as typed."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return str(value)


def _complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Key names from the daemon, if it can be reached quickly; nothing otherwise."""
    path = ctx.find_root().params.get("socket_path") or DEFAULT_SOCKET
    try:
        doc = ControlClient(path, timeout=2.0).request("GET", "/v1/keys")
    except AuthdError:
        return []
    names = [k.get("name") for k in doc.get("keys", []) if isinstance(k, dict)]
    return [CompletionItem(n) for n in names if isinstance(n, str) and n.startswith(incomplete)]


# ---- output -------------------------------------------------------------------------------


def _when(t: object, none: str = "never") -> str:
    if not isinstance(t, int | float):
        return none
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _list(v: object, empty: str) -> str:
    return ", ".join(str(x) for x in v) if isinstance(v, list) and v else empty


def _json(doc: Mapping[str, Any]) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _pairs(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        click.echo(f"{k + ':':<{width + 1}} {v}")


def _key_pairs(k: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("name", str(k.get("name"))),
        ("kid", str(k.get("kid"))),
        ("state", str(k.get("state"))),
        ("scopes", _list(k.get("scopes"), "none")),
        ("models", _list(k.get("models"), "any")),
        ("created", _when(k.get("created"), "-")),
        ("expires", _when(k.get("expires"))),
        ("rotated", _when(k.get("rotated_at"), "-")),
        ("previous secret until", _when(k.get("previous_secret_valid_until"), "-")),
        ("revoked", _when(k.get("revoked_at"), "-")),
        ("imported", "yes" if k.get("imported") else "no"),
    ]


def _flatten(doc: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested status documents as ``a.b: value`` lines."""
    if isinstance(doc, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in doc.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(doc, list) and any(isinstance(x, Mapping | list) for x in doc):
        return [p for i, x in enumerate(doc) for p in _flatten(x, f"{prefix}[{i}]")]
    if isinstance(doc, list):
        return [(prefix, _list(doc, "-"))]
    if doc is None:
        return [(prefix, "-")]
    return [(prefix, str(doc).lower() if isinstance(doc, bool) else str(doc))]


def _issued(doc: Mapping[str, Any], headline: str) -> None:
    click.echo(headline)
    click.echo(doc["key"])
    click.echo(ONCE)


def _grants_body(
    scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> dict[str, Any]:
    body = {"scopes": list(scopes), "models": list(models), "expires": expires}
    return {k: v for k, v in body.items() if v}  # absent: the daemon's defaults


# ---- commands -----------------------------------------------------------------------------

pass_state = click.make_pass_decorator(_State)
name_argument = click.argument("name", shell_complete=_complete_names)
scope_option = click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(list(SCOPES)),
    help="a scope to grant; repeat for more [default: inference]",
)
models_option = click.option(
    "--models",
    "models",
    multiple=True,
    metavar="GLOB",
    help="models the key may use, as a glob on the request's model; repeat for more "
    "[default: any model]",
)
expires_option = click.option(
    "--expires",
    type=_Duration(),
    metavar="DURATION",
    help="expire this long from now, e.g. 30d, 12h, 1h30m [default: never]",
)


@click.group(
    "authctl",
    cls=_Authctl,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    default=DEFAULT_SOCKET,
    envvar="LOCALAI_AUTHD_SOCKET",
    show_default=True,
    show_envvar=True,
    help="the daemon's control socket",
)
@click.option("--json", "as_json", is_flag=True, help="print the daemon's JSON answer")
@click.version_option(__version__, prog_name="authctl")
@click.pass_context
def cli(ctx: click.Context, socket_path: str, as_json: bool) -> None:
    """Manage localai-authd's API keys over its control socket.

    Only root and members of the daemon's admin group may use the socket.
    """
    ctx.obj = _State(ControlClient(socket_path), as_json)


@cli.command()
@click.argument("name")
@scope_option
@models_option
@expires_option
@pass_state
def create(
    state: _State, name: str, scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> None:
    """Create key NAME and print its secret, once."""
    doc = state.client.request(
        "POST", "/v1/keys", {"name": name, **_grants_body(scopes, models, expires)}
    )
    if state.as_json:
        return _json(doc)
    _issued(
        doc,
        f"Created key {doc['name']!r} (kid {doc['kid']}; scopes: {_list(doc['scopes'], 'none')};"
        f" models: {_list(doc['models'], 'any')}; expires: {_when(doc['expires'])}). Secret:",
    )


@cli.command("list")
@pass_state
def list_keys(state: _State) -> None:
    """List every key (never their secrets)."""
    doc = state.client.request("GET", "/v1/keys")
    if state.as_json:
        return _json(doc)
    keys = doc.get("keys", [])
    if not keys:
        click.echo("no keys yet; create one with: authctl create NAME")
        return
    rows = [_key_pairs(k)[:7] for k in keys]  # name .. expires
    _table([n.upper() for n, _ in rows[0]], [[v for _, v in row] for row in rows])


@cli.command()
@name_argument
@pass_state
def show(state: _State, name: str) -> None:
    """Show key NAME (never its secret)."""
    doc = state.client.request("GET", key_path(name))
    if state.as_json:
        return _json(doc)
    _pairs(_key_pairs(doc))


@cli.command()
@name_argument
@click.option(
    "--grace",
    type=_Duration(),
    default="0",
    show_default=True,
    metavar="DURATION",
    help="how long the current secret keeps working, e.g. 1h; 0 ends it at once",
)
@pass_state
def rotate(state: _State, name: str, grace: str) -> None:
    """Give key NAME a new secret and print it, once."""
    doc = state.client.request("POST", key_path(name, "rotate"), {"grace": grace})
    if state.as_json:
        return _json(doc)
    until = doc.get("previous_secret_valid_until")
    old = f"the old secret works until {_when(until)}" if until else "the old secret is dead"
    _issued(doc, f"Rotated key {doc['name']!r} (kid {doc['kid']}); {old}. New secret:")


@cli.command()
@name_argument
@click.option("--kill-streams", is_flag=True, help="also end the key's requests in flight")
@pass_state
def revoke(state: _State, name: str, kill_streams: bool) -> None:
    """Revoke key NAME: it stops working with the very next request."""
    doc = state.client.request("POST", key_path(name, "revoke"), {"kill_streams": kill_streams})
    if state.as_json:
        return _json(doc)
    ended = f"; {doc.get('streams_killed', 0)} stream(s) ended" if kill_streams else ""
    click.echo(f"Revoked key {doc['name']!r} (kid {doc['kid']}){ended}.")


def _read_secret() -> str:
    stdin = sys.stdin  # CliRunner swaps it too
    if stdin.isatty():
        # Never echoed, and never from argv (where ps and shell history would see it).
        secret = str(click.prompt("Secret to import", hide_input=True, err=True))
    else:
        secret = stdin.read(MAX_SECRET_CHARS + 1).rstrip("\r\n")
    if not secret:
        raise Failure("no secret given on stdin", EXIT_USAGE)
    return secret


@cli.command("import")
@click.argument("name")
@scope_option
@models_option
@expires_option
@pass_state
def import_key(
    state: _State, name: str, scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> None:
    """Register an existing secret, read from stdin, as key NAME.

    For migrating from a static key: clients keep the secret they have. It is read from
    stdin (prompted without echo on a terminal), never from the command line.

    \b
        authctl import legacy < old-key.txt
    """
    body = {"secret": _read_secret(), **_grants_body(scopes, models, expires)}
    doc = state.client.request("POST", key_path(name, "import"), body)
    if state.as_json:
        return _json(doc)
    click.echo(f"Imported key {doc['name']!r} (kid {doc['kid']}); the secret now authenticates.")


@cli.command()
@pass_state
def status(state: _State) -> None:
    """Show the daemon's version, uptime, upstreams and key counts."""
    doc = state.client.request("GET", "/v1/status")
    if state.as_json:
        return _json(doc)
    pairs = _flatten(doc)
    if pairs:
        _pairs(pairs)


@cli.command()
@pass_state
def reload(state: _State) -> None:
    """Re-read the daemon's config, as SIGHUP does.

    The new config is applied only if all of it is valid; otherwise the daemon keeps
    the old one and this command fails with the problems it found.
    """
    doc = state.client.request("POST", "/v1/reload")
    if state.as_json:
        _json(doc)
    if doc.get("reloaded") is False:
        problems = doc.get("problems") or ["the configuration is invalid"]
        raise Failure("reload refused: " + "; ".join(str(p) for p in problems), EXIT_CONFIG)
    if not state.as_json:
        click.echo("Reloaded.")


def main() -> None:
    cli.main(prog_name="authctl")


if __name__ == "__main__":
    main()
