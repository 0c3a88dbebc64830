"""authctl's key commands: create, list, show, rotate, token, certificates, revoke, import."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from ..control.client import key_path
from ..errors import EXIT_USAGE
from ..keys.model import SCOPES
from . import output as out
from .base import Doc, Failure, State
from .group import cli, pass_state
from .limit_options import limit_options, limits_body
from .params import (
    Duration,
    complete_names,
    expires_option,
    models_option,
    name_argument,
    scope_option,
)

ONCE = "This secret will not be shown again: store it now."
MAX_SECRET_CHARS = 4096  # the daemon accepts far less; just don't read an endless pipe


def issued(headline: str, doc: Mapping[str, Any]) -> str:
    return f"{headline}\n{doc['key']}\n{ONCE}"


def known(name: str) -> tuple[str, str]:
    """NAME as State.call's ``name``: an unknown key gets the nearest existing one suggested."""
    return (name, "/v1/keys")


def grants_body(
    scopes: tuple[str, ...], models: tuple[str, ...], expires: str | None
) -> dict[str, Any]:
    body = {"scopes": list(scopes), "models": list(models), "expires": expires}
    return {k: v for k, v in body.items() if v}  # absent: the daemon's defaults


def _created(doc: Doc) -> str:
    granted, allowed = out.joined(doc["scopes"], "none"), out.joined(doc["models"], "any")
    return issued(
        f"Created key {doc['name']!r} (kid {doc['kid']}; scopes: {granted}; models: {allowed};"
        f" expires: {out.when(doc['expires'])}). Secret:",
        doc,
    )


@cli.command()
@click.argument("name")
@scope_option
@models_option
@expires_option
@limit_options
@pass_state
def create(
    state: State,
    /,
    name: str,
    scopes: tuple[str, ...],
    models: tuple[str, ...],
    expires: str | None,
    **limits: Any,
) -> None:
    """Create key NAME and print its secret, once.

    Limits left out (or 'default') follow the daemon's config defaults.
    """
    body = {"name": name, **grants_body(scopes, models, expires)}
    if lim := limits_body(limits):
        body["limits"] = lim
    state.call("POST", "/v1/keys", body, human=_created)


def _listed(doc: Doc) -> str:
    keys = doc.get("keys", [])
    return out.key_table(keys) if keys else "no keys yet; create one with: authctl create NAME"


@cli.command("list")
@pass_state
def list_keys(state: State) -> None:
    """List every key (never their secrets)."""
    state.call("GET", "/v1/keys", human=_listed)


@cli.command()
@name_argument
@pass_state
def show(state: State, name: str) -> None:
    """Show key NAME (never its secret)."""
    state.call(
        "GET", key_path(name), human=lambda doc: out.pairs(out.key_pairs(doc)), name=known(name)
    )


def _rotated(doc: Doc) -> str:
    until = doc.get("previous_secret_valid_until")
    old = f"the old secret works until {out.when(until)}" if until else "the old secret is dead"
    return issued(f"Rotated key {doc['name']!r} (kid {doc['kid']}); {old}. New secret:", doc)


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
        raise Failure("give either NAME or --signing-secret", EXIT_USAGE, "usage")
    if name is not None:
        state.call(
            "POST", key_path(name, "rotate"), {"grace": grace}, human=_rotated, name=known(name)
        )
        return
    kept = grace if grace != "0" else "no time at all"
    state.call(
        "POST",
        "/v1/signing-secret/rotate",
        {"grace": grace},
        human=lambda doc: (
            f"New token signing secret {doc['id']}; tokens signed before keep working for {kept}."
        ),
    )


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
    state.call(
        "POST",
        key_path(name, "token"),
        body,
        human=lambda doc: (
            f"Token for key {name!r}, valid until {out.when(doc['expires_at'])} "
            f"(scopes: {out.joined(doc['scopes'], 'none')}):\n{doc['token']}"
        ),
        name=known(name),
    )


@cli.command("bind-cert")
@name_argument
@click.argument("subject")
@pass_state
def bind_cert(state: State, name: str, subject: str) -> None:
    """Let clients whose certificate names SUBJECT act as key NAME (mutual TLS).

    SUBJECT is the certificate's common name or its first DNS/e-mail/URI subject
    alternative name, as the listener's client_identity says.
    """
    state.call(
        "POST",
        key_path(name, "bind-cert"),
        {"subject": subject},
        human=lambda doc: (
            f"Certificate subject {subject!r} now authenticates as key {doc['name']!r}."
        ),
        name=known(name),
    )


@cli.command("unbind-cert")
@name_argument
@click.argument("subject")
@pass_state
def unbind_cert(state: State, name: str, subject: str) -> None:
    """Stop certificate SUBJECT from acting as key NAME."""
    state.call(
        "POST",
        key_path(name, "unbind-cert"),
        {"subject": subject},
        human=lambda doc: (
            f"Certificate subject {subject!r} no longer authenticates as {doc['name']!r}."
        ),
        name=known(name),
    )


@cli.command()
@name_argument
@click.option("--kill-streams", is_flag=True, help="also end the key's requests in flight")
@pass_state
def revoke(state: State, name: str, kill_streams: bool) -> None:
    """Revoke key NAME: it stops working with the very next request."""

    def revoked(doc: Doc) -> str:
        ended = f"; {doc.get('streams_killed', 0)} stream(s) ended" if kill_streams else ""
        return f"Revoked key {doc['name']!r} (kid {doc['kid']}){ended}."

    body = {"kill_streams": kill_streams}
    state.call("POST", key_path(name, "revoke"), body, human=revoked, name=known(name))


def read_secret() -> str:
    stdin = sys.stdin  # CliRunner swaps it too
    if stdin.isatty():
        # Never echoed, and never from argv (where ps and shell history would see it).
        secret = str(click.prompt("Secret to import", hide_input=True, err=True))
    else:
        secret = one_line_secret(stdin.read(MAX_SECRET_CHARS + 1))
    if not secret:
        raise Failure("no secret given on stdin", EXIT_USAGE, "usage")
    return secret


def one_line_secret(text: str) -> str:
    """The secret in ``text``: one line, less the one line break ``echo`` or a file adds.

    Anything else with a line break is refused, never trimmed: a secret cut at a newline, or
    two secrets pasted together, would register something no client presents.
    """
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            text = text[: -len(end)]
            break
    breaks = [i for i, c in enumerate(text) if c in "\r\n"]
    if not breaks:
        return text
    if not text[: breaks[0]]:
        why = "starts with a line break"
    elif not text[breaks[0] :].strip("\r\n"):
        why = "ends with more than one line break (one, as echo adds, is fine)"
    else:
        why = (
            f"has a line break inside it, after character {breaks[0]} "
            f"({len(text.splitlines())} lines); a secret is one line"
        )
    raise Failure(f"the secret on stdin {why}", EXIT_USAGE, "usage")


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
    body = {"secret": read_secret(), **grants_body(scopes, models, expires)}
    state.call(
        "POST",
        key_path(name, "import"),
        body,
        human=lambda doc: (
            f"Imported key {doc['name']!r} (kid {doc['kid']}); the secret now authenticates."
        ),
    )
