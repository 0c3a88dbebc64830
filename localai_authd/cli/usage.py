"""authctl usage: what each key has used (requests, tokens, streams, bytes, last use)."""

from __future__ import annotations

from typing import Any

import click

from . import output as out
from .base import State
from .group import cli, pass_state
from .params import Duration, complete_names

COLUMNS = ("requests", "tokens_in", "tokens_out", "streams", "bytes_in", "bytes_out")


def _table(doc: dict[str, Any]) -> str:
    keys = doc.get("keys") or []
    if not keys:
        return "No usage recorded" + (" in that period." if doc.get("since") else " yet.")
    header = ["NAME", *(c.upper() for c in COLUMNS), "LAST USED", "FROM"]
    rows = [
        [
            str(k.get("name") or k.get("kid")),
            *(str(k.get(c, 0)) for c in COLUMNS),
            out.when(k.get("last_used")),
            str(k.get("last_client") or "-"),
        ]
        for k in keys
    ]
    return out.table(header, rows)


@cli.command()
@click.argument("name", required=False, shell_complete=complete_names)
@click.option(
    "--since",
    type=Duration(),
    metavar="DURATION",
    help="only the UTC days this period touches, e.g. 1d, 7d (kept for 90 days) "
    "[default: since usage was first recorded]",
)
@pass_state
def usage(state: State, name: str | None, since: str | None) -> None:
    """Show what each key (or key NAME) has used: requests, tokens, streams, bytes, last use.

    Tokens are as the upstream reported them, else estimated (see the README, "Limits").
    Counts survive restarts (saved in the state directory every 30 s and on stop).
    """
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if since is not None:
        body["since"] = since
    state.call("GET", "/v1/usage", body or None, human=_table)
