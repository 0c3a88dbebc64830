"""authctl's plumbing: one-line failures, the group class, parameter types, shared options.

Kept apart from the commands (cli.py) so each file stays readable. Same import rules as
authctl: click, the stdlib control client and pure modules only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import click
from click.shell_completion import CompletionItem

from .control.client import DEFAULT_SOCKET, ControlClient
from .durations import parse_duration
from .errors import EXIT_FAILURE, EXIT_USAGE, AuthdError
from .keys.model import SCOPES


class Failure(click.ClickException):
    """Printed as exactly one line, ``authctl: <reason>``, with a documented exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(" ".join(message.split()))
        # click declares exit_code a ClassVar, but reads it from the instance it catches.
        vars(self)["exit_code"] = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"authctl: {self.format_message()}", file=file, err=True)


@contextlib.contextmanager
def one_line() -> Iterator[None]:
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


class AuthctlGroup(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with one_line():
            return super().invoke(ctx)


@dataclass(frozen=True)
class State:
    client: ControlClient
    as_json: bool


class Duration(click.ParamType[str, Any]):
    """Checked here for a quick error naming the option; sent to the daemon as typed."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return str(value)


def complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Key names from the daemon, if it can be reached quickly; nothing otherwise."""
    path = ctx.find_root().params.get("socket_path") or DEFAULT_SOCKET
    try:
        doc = ControlClient(path, timeout=2.0).request("GET", "/v1/keys")
    except AuthdError:
        return []
    names = [k.get("name") for k in doc.get("keys", []) if isinstance(k, dict)]
    return [CompletionItem(n) for n in names if isinstance(n, str) and n.startswith(incomplete)]


pass_state = click.make_pass_decorator(State)
name_argument = click.argument("name", shell_complete=complete_names)
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
    type=Duration(),
    metavar="DURATION",
    help="expire this long from now, e.g. 30d, 12h, 1h30m [default: never]",
)
