"""authctl's daemon commands: status, reload, and the upstreams' own keys."""

from __future__ import annotations

from urllib.parse import quote

import click

from ..errors import EXIT_CONFIG
from . import output as out
from .base import Failure, State
from .group import cli, pass_state
from .keys import read_secret


@cli.command()
@pass_state
def status(state: State) -> None:
    """Show the daemon's version, uptime, upstreams and key counts."""
    state.call("GET", "/v1/status", human=lambda doc: out.pairs(out.flatten(doc)))


@cli.command()
@pass_state
def reload(state: State) -> None:
    """Re-read the daemon's config, as SIGHUP does.

    The new config is applied only if all of it is valid; otherwise the daemon keeps
    the old one and this command fails with the problems it found.
    """
    doc = state.client.request("POST", "/v1/reload")
    if doc.get("reloaded") is False:
        problems = [str(p) for p in doc.get("problems") or ["the configuration is invalid"]]
        raise Failure(
            "reload refused: " + "; ".join(problems),
            EXIT_CONFIG,
            "config_invalid",
            problems=problems,
        )
    state.show(doc, lambda _: "Reloaded.")


@cli.group("upstream-key")
def upstream_key() -> None:
    """The upstreams' own API keys (vLLM --api-key), kept in the daemon's keyring.

    An [[upstream]] with key_name = "NAME" gets 'Authorization: Bearer <that key>' on every
    request; the client's credentials never reach it.
    """


def _upstream_path(name: str, action: str = "") -> str:
    path = f"/v1/upstream-keys/{quote(name, safe='')}"
    return f"{path}/{action}" if action else path


@upstream_key.command("set")
@click.argument("name")
@pass_state
def upstream_key_set(state: State, name: str) -> None:
    """Store upstream key NAME, read from stdin (never from the command line)."""
    state.call(
        "POST",
        _upstream_path(name),
        {"secret": read_secret()},
        human=lambda _: f"Upstream key {name!r} stored in the keyring.",
    )


@upstream_key.command("delete")
@click.argument("name")
@pass_state
def upstream_key_delete(state: State, name: str) -> None:
    """Remove upstream key NAME."""
    state.call(
        "POST",
        _upstream_path(name, "delete"),
        human=lambda _: f"Upstream key {name!r} removed.",
        name=(name, "/v1/upstream-keys"),
    )


@upstream_key.command("list")
@pass_state
def upstream_key_list(state: State) -> None:
    """List the names of the stored upstream keys (never the keys)."""
    state.call(
        "GET",
        "/v1/upstream-keys",
        human=lambda doc: "\n".join(doc.get("upstream_keys", [])) or "no upstream keys",
    )
