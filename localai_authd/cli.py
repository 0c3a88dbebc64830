"""authctl: manage localai-authd's keys over its control socket.

Typed by hand and used in scripts, so it starts fast: click, the stdlib control client and
pure modules only -- never aiohttp, keyring or cryptography (a test holds it to that).
Every failure is one line, ``authctl: <reason>``, on stderr, with an exit code from the
table in ``authctl --help``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import click

from . import __version__
from . import cliout as out
from .clibase import (
    AuthctlGroup,
    Duration,
    Failure,
    State,
    complete_names,
    expires_option,
    models_option,
    name_argument,
    pass_state,
    scope_option,
)
from .control.client import DEFAULT_SOCKET, ControlClient, key_path
from .errors import EXIT_CONFIG, EXIT_USAGE
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


def _issued(doc: Mapping[str, Any], headline: str) -> None:
    click.echo(headline)
    click.echo(doc["key"])
    click.echo(ONCE)


def _grants_body(
    scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> dict[str, Any]:
    body = {"scopes": list(scopes), "models": list(models), "expires": expires}
    return {k: v for k, v in body.items() if v}  # absent: the daemon's defaults


@click.group(
    "authctl",
    cls=AuthctlGroup,
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
    ctx.obj = State(ControlClient(socket_path), as_json)


@cli.command()
@click.argument("name")
@scope_option
@models_option
@expires_option
@pass_state
def create(
    state: State, name: str, scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> None:
    """Create key NAME and print its secret, once."""
    doc = state.client.request(
        "POST", "/v1/keys", {"name": name, **_grants_body(scopes, models, expires)}
    )
    if state.as_json:
        return out.print_json(doc)
    granted, allowed = out.joined(doc["scopes"], "none"), out.joined(doc["models"], "any")
    _issued(
        doc,
        f"Created key {doc['name']!r} (kid {doc['kid']}; scopes: {granted}; models: {allowed};"
        f" expires: {out.when(doc['expires'])}). Secret:",
    )


@cli.command("list")
@pass_state
def list_keys(state: State) -> None:
    """List every key (never their secrets)."""
    doc = state.client.request("GET", "/v1/keys")
    if state.as_json:
        return out.print_json(doc)
    keys = doc.get("keys", [])
    if not keys:
        click.echo("no keys yet; create one with: authctl create NAME")
        return
    rows = [out.key_pairs(k)[:7] for k in keys]  # name .. expires
    out.table([n.upper() for n, _ in rows[0]], [[v for _, v in row] for row in rows])


@cli.command()
@name_argument
@pass_state
def show(state: State, name: str) -> None:
    """Show key NAME (never its secret)."""
    doc = state.client.request("GET", key_path(name))
    if state.as_json:
        return out.print_json(doc)
    out.pairs(out.key_pairs(doc))


@cli.command()
@click.argument("name", required=False, shell_complete=complete_names)
@click.option(
    "--grace",
    type=Duration(),
    default="0",
    show_default=True,
    metavar="DURATION",
    help="how long the current secret keeps working, e.g. 1h; 0 ends it at once",
)
@click.option(
    "--signing-secret",
    is_flag=True,
    help="rotate the token signing secret instead of a key (tokens signed with the old one "
    "keep working for --grace)",
)
@pass_state
def rotate(state: State, name: str | None, grace: str, signing_secret: bool) -> None:
    """Give key NAME a new secret and print it, once; or rotate the token signing secret.

    \b
        authctl rotate laptop --grace 1h
        authctl rotate --signing-secret --grace 1h
    """
    if signing_secret == (name is not None):
        raise Failure("give either NAME or --signing-secret", EXIT_USAGE)
    if signing_secret:
        doc = state.client.request("POST", "/v1/signing-secret/rotate", {"grace": grace})
        if state.as_json:
            return out.print_json(doc)
        click.echo(
            f"New token signing secret {doc['id']}; tokens signed before keep working "
            f"for {grace if grace != '0' else 'no time at all'}."
        )
        return None
    assert name is not None
    doc = state.client.request("POST", key_path(name, "rotate"), {"grace": grace})
    if state.as_json:
        return out.print_json(doc)
    until = doc.get("previous_secret_valid_until")
    old = f"the old secret works until {out.when(until)}" if until else "the old secret is dead"
    _issued(doc, f"Rotated key {doc['name']!r} (kid {doc['kid']}); {old}. New secret:")
    return None


@cli.command()
@name_argument
@click.option(
    "--ttl",
    type=Duration(),
    metavar="DURATION",
    help="lifetime, e.g. 15m or 1h [default: the daemon's [tokens] default_ttl]",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(list(SCOPES)),
    help="narrow the token to this scope; repeat for more [default: the key's]",
)
@pass_state
def token(state: State, name: str, ttl: str | None, scopes: tuple[str, ...]) -> None:
    """Issue a time-limited token for key NAME and print it.

    A token works wherever the key does (Bearer or x-api-key), for its lifetime only, and
    dies with the key, with the key's current secret (rotated out past its grace), and with
    the signing secret.
    """
    body: dict[str, Any] = {}
    if ttl:
        body["ttl"] = ttl
    if scopes:
        body["scopes"] = list(scopes)
    doc = state.client.request("POST", key_path(name, "token"), body)
    if state.as_json:
        return out.print_json(doc)
    click.echo(
        f"Token for key {name!r}, valid until {out.when(doc['expires_at'])} "
        f"(scopes: {out.joined(doc['scopes'], 'none')}):"
    )
    click.echo(doc["token"])
    return None


@cli.command("bind-cert")
@name_argument
@click.argument("subject")
@pass_state
def bind_cert(state: State, name: str, subject: str) -> None:
    """Let clients whose certificate names SUBJECT act as key NAME (mutual TLS).

    SUBJECT is the certificate's common name or its first DNS/e-mail/URI subject
    alternative name, as the listener's client_identity says.
    """
    doc = state.client.request("POST", key_path(name, "bind-cert"), {"subject": subject})
    if state.as_json:
        return out.print_json(doc)
    click.echo(f"Certificate subject {subject!r} now authenticates as key {doc['name']!r}.")
    return None


@cli.command("unbind-cert")
@name_argument
@click.argument("subject")
@pass_state
def unbind_cert(state: State, name: str, subject: str) -> None:
    """Stop certificate SUBJECT from acting as key NAME."""
    doc = state.client.request("POST", key_path(name, "unbind-cert"), {"subject": subject})
    if state.as_json:
        return out.print_json(doc)
    click.echo(f"Certificate subject {subject!r} no longer authenticates as {doc['name']!r}.")
    return None


@cli.command()
@name_argument
@click.option("--kill-streams", is_flag=True, help="also end the key's requests in flight")
@pass_state
def revoke(state: State, name: str, kill_streams: bool) -> None:
    """Revoke key NAME: it stops working with the very next request."""
    doc = state.client.request("POST", key_path(name, "revoke"), {"kill_streams": kill_streams})
    if state.as_json:
        return out.print_json(doc)
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
    state: State, name: str, scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
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
        return out.print_json(doc)
    click.echo(f"Imported key {doc['name']!r} (kid {doc['kid']}); the secret now authenticates.")


@cli.command()
@pass_state
def status(state: State) -> None:
    """Show the daemon's version, uptime, upstreams and key counts."""
    doc = state.client.request("GET", "/v1/status")
    if state.as_json:
        return out.print_json(doc)
    pairs = out.flatten(doc)
    if pairs:
        out.pairs(pairs)


@cli.command()
@pass_state
def reload(state: State) -> None:
    """Re-read the daemon's config, as SIGHUP does.

    The new config is applied only if all of it is valid; otherwise the daemon keeps
    the old one and this command fails with the problems it found.
    """
    doc = state.client.request("POST", "/v1/reload")
    if state.as_json:
        out.print_json(doc)
    if doc.get("reloaded") is False:
        problems = doc.get("problems") or ["the configuration is invalid"]
        raise Failure("reload refused: " + "; ".join(str(p) for p in problems), EXIT_CONFIG)
    if not state.as_json:
        click.echo("Reloaded.")


@cli.group("upstream-key")
def upstream_key() -> None:
    """The upstreams' own API keys (vLLM --api-key), kept in the daemon's keyring.

    An [[upstream]] with key_name = "NAME" gets 'Authorization: Bearer <that key>' on every
    request; the client's credentials never reach it.
    """


@upstream_key.command("set")
@click.argument("name")
@pass_state
def upstream_key_set(state: State, name: str) -> None:
    """Store upstream key NAME, read from stdin (never from the command line)."""
    doc = state.client.request(
        "POST", f"/v1/upstream-keys/{quote(name, safe='')}", {"secret": _read_secret()}
    )
    if state.as_json:
        return out.print_json(doc)
    click.echo(f"Upstream key {name!r} stored in the keyring.")
    return None


@upstream_key.command("delete")
@click.argument("name")
@pass_state
def upstream_key_delete(state: State, name: str) -> None:
    """Remove upstream key NAME."""
    doc = state.client.request("POST", f"/v1/upstream-keys/{quote(name, safe='')}/delete")
    if state.as_json:
        return out.print_json(doc)
    click.echo(f"Upstream key {name!r} removed.")
    return None


@upstream_key.command("list")
@pass_state
def upstream_key_list(state: State) -> None:
    """List the names of the stored upstream keys (never the keys)."""
    doc = state.client.request("GET", "/v1/upstream-keys")
    if state.as_json:
        return out.print_json(doc)
    names = doc.get("upstream_keys", [])
    click.echo("\n".join(names) if names else "no upstream keys")
    return None


def main() -> None:
    cli.main(prog_name="authctl")


if __name__ == "__main__":
    main()
