"""The root ``authctl`` group: global options, the exit-code table in its help."""

from __future__ import annotations

import click

from .. import __version__
from ..control.client import DEFAULT_SOCKET, ControlClient
from ..errors import EXIT_STATUS
from .base import Authctl, State
from .params import SocketPath

EPILOG = f"""\b
Exit codes:
{chr(10).join(f"  {code:<3} {meaning}" for code, meaning in EXIT_STATUS.items())}

\b
--json works before or after the command (authctl --json list, authctl list --json);
failures then print {{"error": {{"code": ..., "message": ...}}}} on stdout, same exit code.

\b
The socket is --socket PATH, else $LOCALAI_AUTHD_SOCKET, else
/run/localai-authd/control.sock. Shell completion (bash; zsh and fish likewise):
  eval "$(_AUTHCTL_COMPLETE=bash_source authctl)"
"""


@click.group(
    "authctl",
    cls=Authctl,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--socket",
    "socket_path",
    type=SocketPath(),
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


pass_state = click.make_pass_decorator(State)
