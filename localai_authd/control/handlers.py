"""Control-plane operations: one function per operation, and the table that routes to them.

Free of aiohttp on purpose: server.py turns HTTP into a :class:`Call` and a handler's
``(status, document)`` or :class:`~localai_authd.errors.AuthdError` back into HTTP, so every
operation can be tested without a socket. Names are checked (``model.check_name``) before the
store is touched, so a name like ``../../x`` is refused with nothing changed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..durations import parse_duration
from ..errors import MethodNotAllowed, UnknownField, UnknownOperation, UsageError
from ..keys.model import DEFAULT_SCOPES, check_name
from . import usage_ops
from .audit_ops import FIELDS as AUDIT_FIELDS
from .audit_ops import read_audit
from .context import ControlContext

Result = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One authorised request, decoded: the operation's inputs and who asked."""

    ctx: ControlContext
    peer_uid: int
    params: Mapping[str, str]  # from the path, percent-decoded
    body: Mapping[str, Any]  # the JSON object, fields already checked against the table


Handler = Callable[[Call], Coroutine[Any, Any, Result]]


@dataclass(frozen=True)
class Operation:
    action: str  # the audit trail's name for it
    method: str
    template: str
    fields: frozenset[str]
    fn: Handler

    @property
    def pattern(self) -> re.Pattern[str]:
        # A path parameter is one non-empty segment; "%2F" inside it stays encoded until
        # after the match, so it can never add segments.
        return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template))


# ---- field decoding: each refuses a wrong type with the field's name --------------------


def _name(raw: object) -> str:
    if not isinstance(raw, str):
        raise UsageError("field 'name' must be a string")
    problem = check_name(raw)
    if problem:
        raise UsageError(problem)
    return raw


def _str_list(body: Mapping[str, Any], field: str) -> tuple[str, ...] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"field {field!r} must be a list of strings")
    return tuple(value)


def _seconds(body: Mapping[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise UsageError(f'field {field!r} must be a duration like "30d" or a number of seconds')
    try:
        return parse_duration(value)
    except ValueError as e:
        raise UsageError(f"field {field!r}: {e}") from e


def _bool(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise UsageError(f"field {field!r} must be true or false")
    return value


def _expires(body: Mapping[str, Any]) -> float | None:
    seconds = _seconds(body, "expires")
    return None if seconds is None else time.time() + seconds


def _grants(body: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    scopes = _str_list(body, "scopes")
    return (DEFAULT_SCOPES if scopes is None else scopes), (_str_list(body, "models") or ())


# ---- the operations ---------------------------------------------------------------------


async def status(call: Call) -> Result:
    return 200, await call.ctx.status()


async def list_keys(call: Call) -> Result:
    now = time.time()
    return 200, {"keys": [i.public(now) for i in call.ctx.store.all()]}


async def show_key(call: Call) -> Result:
    name = _name(call.params["name"])
    return 200, call.ctx.store.get(name).public(time.time())


async def create_key(call: Call) -> Result:
    if "name" not in call.body:
        raise UsageError("field 'name' is required")
    name = _name(call.body["name"])
    scopes, models = _grants(call.body)
    issued = await call.ctx.store.create(name, scopes, models, _expires(call.body))
    return 201, {**issued.identity.public(time.time()), "key": issued.key}


async def rotate_key(call: Call) -> Result:
    name = _name(call.params["name"])
    grace = _seconds(call.body, "grace") or 0.0
    issued = await call.ctx.store.rotate(name, grace)
    return 200, {**issued.identity.public(time.time()), "key": issued.key}


async def revoke_key(call: Call) -> Result:
    name = _name(call.params["name"])
    kill = _bool(call.body, "kill_streams")
    # Durable first (the store commits before returning), then end the streams: a stream
    # killed for a revocation that failed to persist would be a lie to the operator.
    ident = await call.ctx.store.revoke(name)
    killed = call.ctx.streams.kill(ident.kid) if kill else 0
    return 200, {**ident.public(time.time()), "streams_killed": killed}


async def import_key(call: Call) -> Result:
    name = _name(call.params["name"])
    secret = call.body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise UsageError("field 'secret' is required and must be a string")
    scopes, models = _grants(call.body)
    ident = await call.ctx.store.import_secret(name, secret, scopes, models, _expires(call.body))
    return 201, ident.public(time.time())


async def issue_token(call: Call) -> Result:
    name = _name(call.params["name"])
    settings = call.ctx.tokens()
    ttl = _seconds(call.body, "ttl") or settings.default_ttl
    scopes = _str_list(call.body, "scopes")
    ident = call.ctx.store.get(name)
    token, exp = call.ctx.store.issue_token(ident, ttl, settings.max_ttl, scopes)
    granted = [s for s in ident.scopes if scopes is None or s in scopes]
    return 200, {
        "name": name,
        "kid": ident.kid,
        "token": token,
        "expires_at": exp,
        "scopes": granted,
    }


async def rotate_signing(call: Call) -> Result:
    grace = _seconds(call.body, "grace") or 0.0
    new = await call.ctx.store.rotate_signing_secret(grace)
    return 200, {"id": new.id, "signing_secrets": call.ctx.store.signing_status()}


def _subject(body: Mapping[str, Any]) -> str:
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject:
        raise UsageError("field 'subject' is required and must be a string")
    return subject


async def bind_cert(call: Call) -> Result:
    ident = await call.ctx.store.bind_cert(_name(call.params["name"]), _subject(call.body))
    return 200, ident.public(time.time())


async def unbind_cert(call: Call) -> Result:
    ident = await call.ctx.store.unbind_cert(_name(call.params["name"]), _subject(call.body))
    return 200, ident.public(time.time())


async def list_upstream_keys(call: Call) -> Result:
    return 200, {"upstream_keys": call.ctx.store.upstream_key_names()}


async def set_upstream_key(call: Call) -> Result:
    name = _name(call.params["name"])
    secret = call.body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise UsageError("field 'secret' is required and must be a string")
    await call.ctx.store.set_upstream_key(name, secret)
    return 200, {"name": name, "set": True}


async def delete_upstream_key(call: Call) -> Result:
    name = _name(call.params["name"])
    await call.ctx.store.delete_upstream_key(name)
    return 200, {"name": name, "set": False}


async def reload(call: Call) -> Result:
    return 200, await call.ctx.reload()


_GRANTS = frozenset({"scopes", "models", "expires"})

OPERATIONS: tuple[Operation, ...] = (
    Operation("status", "GET", "/v1/status", frozenset(), status),
    Operation("list", "GET", "/v1/keys", frozenset(), list_keys),
    Operation("create", "POST", "/v1/keys", _GRANTS | {"name"}, create_key),
    Operation("show", "GET", "/v1/keys/{name}", frozenset(), show_key),
    Operation("rotate", "POST", "/v1/keys/{name}/rotate", frozenset({"grace"}), rotate_key),
    Operation("revoke", "POST", "/v1/keys/{name}/revoke", frozenset({"kill_streams"}), revoke_key),
    Operation("import", "POST", "/v1/keys/{name}/import", _GRANTS | {"secret"}, import_key),
    Operation("token", "POST", "/v1/keys/{name}/token", frozenset({"ttl", "scopes"}), issue_token),
    Operation("bind-cert", "POST", "/v1/keys/{name}/bind-cert", frozenset({"subject"}), bind_cert),
    Operation(
        "unbind-cert", "POST", "/v1/keys/{name}/unbind-cert", frozenset({"subject"}), unbind_cert
    ),
    Operation(
        "rotate-signing-secret",
        "POST",
        "/v1/signing-secret/rotate",
        frozenset({"grace"}),
        rotate_signing,
    ),
    Operation("upstream-key-list", "GET", "/v1/upstream-keys", frozenset(), list_upstream_keys),
    Operation(
        "upstream-key-set",
        "POST",
        "/v1/upstream-keys/{name}",
        frozenset({"secret"}),
        set_upstream_key,
    ),
    Operation(
        "upstream-key-delete",
        "POST",
        "/v1/upstream-keys/{name}/delete",
        frozenset(),
        delete_upstream_key,
    ),
    Operation("reload", "POST", "/v1/reload", frozenset(), reload),
    Operation("usage", "GET", "/v1/usage", frozenset({"name", "since"}), usage_ops.usage),
    Operation("audit", "POST", "/v1/audit", AUDIT_FIELDS, read_audit),
)
_COMPILED = tuple((op, op.pattern) for op in OPERATIONS)


def resolve(method: str, raw_path: str) -> tuple[Operation, dict[str, str]]:
    """The operation for ``method`` on ``raw_path`` (still percent-encoded) and its params."""
    allowed: list[str] = []
    for op, pattern in _COMPILED:
        m = pattern.fullmatch(raw_path)
        if m is None:
            continue
        if op.method == method:
            try:
                return op, {k: unquote(v, errors="strict") for k, v in m.groupdict().items()}
            except UnicodeDecodeError as e:
                raise UsageError("the path is not valid UTF-8 once percent-decoded") from e
        allowed.append(op.method)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {raw_path}", allowed)
    raise UnknownOperation(f"unknown operation: {method} {raw_path[:200]}")


def check_fields(op: Operation, body: Mapping[str, Any]) -> None:
    unknown = sorted(set(body) - op.fields)
    if unknown:
        known = ", ".join(sorted(op.fields)) or "none"
        raise UnknownField(
            f"unknown field {unknown[0][:64]!r} for {op.action}; accepted fields: {known}"
        )
