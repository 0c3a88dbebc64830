"""authctl's key lifecycle commands: set, suspend, resume, delete."""

from __future__ import annotations

from typing import Any

import click

from ..control.client import key_path
from ..errors import EXIT_USAGE
from . import output as out
from .base import Doc, Failure, State
from .group import cli, pass_state
from .limit_options import limit_options, limits_body
from .params import Duration, models_option, name_argument, scope_option

NEVER = "never"


class ExpiryChange(Duration):
    """A duration from now, or ``never``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return NEVER if value == NEVER else super().convert(value, param, ctx)


def _changed(doc: Doc) -> str:
    limits = {k: v for k, v in (doc.get("limits") or {}).items() if v is not None}
    shown = ", ".join(f"{k}={v}" for k, v in limits.items()) or "config defaults"
    return (
        f"Key {doc['name']!r} (kid {doc['kid']}): scopes {out.joined(doc['scopes'], 'none')}; "
        f"models {out.joined(doc['models'], 'any')}; expires {out.when(doc['expires'])}; "
        f"limits {shown}. The secret is unchanged."
    )


@cli.command("set")
@name_argument
@scope_option
@models_option
@click.option("--any-model", is_flag=True, help="allow every model (clears --models)")
@click.option(
    "--expires",
    type=ExpiryChange(),
    metavar="DURATION|never",
    help="expire this long from now, or never",
)
@limit_options
@pass_state
def set_key(
    state: State,
    /,
    name: str,
    scopes: tuple[str, ...],
    models: tuple[str, ...],
    any_model: bool,
    expires: str | None,
    **limits: Any,
) -> None:
    """Change key NAME's scopes, models, expiry or limits; its secret stays the same.

    Options not given stay as they are; --scope and --models replace the whole list.

    \b
        authctl set laptop --models 'llama3*' --models 'qwen*' --rpm 60
        authctl set laptop --expires never --rpm default
    """
    if any_model and models:
        raise Failure("give --models or --any-model, not both", EXIT_USAGE, "usage")
    body: dict[str, Any] = {}
    if scopes:
        body["scopes"] = list(scopes)
    if models or any_model:
        body["models"] = list(models)
    if expires is not None:
        body["expires"] = expires
    if lim := limits_body(limits):
        body["limits"] = lim
    if not body:
        raise Failure("nothing to change: give an option (see 'authctl set --help')", EXIT_USAGE)
    state.call("POST", key_path(name, "set"), body, human=_changed)


@cli.command()
@name_argument
@click.option("--kill-streams", is_flag=True, help="also end the key's requests in flight")
@pass_state
def suspend(state: State, name: str, kill_streams: bool) -> None:
    """Suspend key NAME: refused from the next request on, until 'authctl resume NAME'."""

    def suspended(doc: Doc) -> str:
        ended = f"; {doc.get('streams_killed', 0)} stream(s) ended" if kill_streams else ""
        return f"Suspended key {doc['name']!r} (kid {doc['kid']}){ended}."

    state.call("POST", key_path(name, "suspend"), {"kill_streams": kill_streams}, human=suspended)


@cli.command()
@name_argument
@pass_state
def resume(state: State, name: str) -> None:
    """Resume suspended key NAME: its secrets and tokens work again."""
    state.call(
        "POST",
        key_path(name, "resume"),
        human=lambda doc: f"Resumed key {doc['name']!r} (kid {doc['kid']}).",
    )


@cli.command()
@name_argument
@pass_state
def delete(state: State, name: str) -> None:
    """Delete revoked key NAME's record (an active key must be revoked first)."""
    state.call(
        "POST",
        key_path(name, "delete"),
        human=lambda doc: f"Deleted the record of revoked key {doc['name']!r}.",
    )
