"""authctl's parameter types and the options several commands share."""

from __future__ import annotations

import os
from typing import Any

import click
from click.shell_completion import CompletionItem

from ..control.client import DEFAULT_SOCKET, ControlClient
from ..durations import parse_duration
from ..errors import AuthdError
from ..keys.model import SCOPES


class Duration(click.ParamType[str, Any]):
    """Checked here for a quick error naming the option; sent to the daemon as typed."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return str(value)


SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with its terminating NUL (unix(7))


class SocketPath(click.ParamType[str, Any]):
    """A Unix socket path that can be one: not empty, and short enough for sun_path."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = os.fspath(value)
        if not path:
            self.fail("the socket path is empty", param, ctx)
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            self.fail(f"a Unix socket path holds at most {SUN_PATH_MAX} bytes", param, ctx)
        return str(path)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type="file")]


def complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Key names from the daemon, if it can be reached quickly; nothing otherwise."""
    path = ctx.find_root().params.get("socket_path") or DEFAULT_SOCKET
    try:
        doc = ControlClient(path, timeout=2.0).request("GET", "/v1/keys")
    except AuthdError:
        return []
    names = [k.get("name") for k in doc.get("keys", []) if isinstance(k, dict)]
    return [CompletionItem(n) for n in names if isinstance(n, str) and n.startswith(incomplete)]


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
    help="models the key may use: a glob on the parsed model reference "
    "[host/][namespace/]model[:tag], compared in lower case; a glob without a host matches "
    "only registry.ollama.ai, without a namespace only its library ('llama3*' never matches "
    "'llama3.evil.example/x/y'); repeat for more [default: any model]",
)
expires_option = click.option(
    "--expires",
    type=Duration(),
    metavar="DURATION",
    help="expire this long from now, e.g. 30d, 12h, 1h30m [default: never]",
)
