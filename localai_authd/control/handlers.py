"""Control-plane operations: one function per operation, and the table that routes to them.

Free of aiohttp on purpose: server.py turns HTTP into a :class:`Call` and a handler's
``(status, document)`` or :class:`~localai_authd.errors.AuthdError` back into HTTP, so every
operation can be tested without a socket. Names are checked (``model.check_name``) before the
store is touched, so a name like ``../../x`` is refused with nothing changed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..errors import MethodNotAllowed, UnknownField, UnknownOperation, UsageError
from ..keys.model import Limits
from . import fields as f
from . import usage_ops
from .audit_ops import FIELDS as AUDIT_FIELDS
from .audit_ops import read_audit
from .call import Call, Result

__all__ = ["OPERATIONS", "Call", "Operation", "Result", "check_fields", "resolve"]


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


# ---- the operations ---------------------------------------------------------------------


async def status(call: Call) -> Result:
    # The event loop's live tasks: a leak of tasks shows here first (make soak reads it).
    return 200, {**await call.ctx.status(), "asyncio_tasks": len(asyncio.all_tasks())}


async def list_keys(call: Call) -> Result:
    now = time.time()
    return 200, {"keys": [i.public(now) for i in call.ctx.store.all()]}


async def show_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    return 200, call.ctx.store.get(name).public(time.time())


async def create_key(call: Call) -> Result:
    if "name" not in call.body:
        raise UsageError("field 'name' is required")
    name = f.name(call.body["name"])
    scopes, models = f.grants(call.body)
    limits = Limits().merged(f.limits(call.body))
    issued = await call.ctx.store.create(name, scopes, models, f.expires(call.body), limits)
    return 201, {**issued.identity.public(time.time()), "key": issued.key}


async def set_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    ident = await call.ctx.store.edit(
        name,
        scopes=f.str_list(call.body, "scopes"),
        models=f.str_list(call.body, "models"),
        expires=f.expires_change(call.body),
        limits=f.limits(call.body),
    )
    return 200, ident.public(time.time())


async def suspend_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    kill = f.flag(call.body, "kill_streams")
    # Durable first, then end the streams (as for revoke).
    ident = await call.ctx.store.suspend(name)
    killed = call.ctx.streams.kill(ident.kid) if kill else 0
    return 200, {**ident.public(time.time()), "streams_killed": killed}


async def resume_key(call: Call) -> Result:
    ident = await call.ctx.store.resume(f.name(call.params["name"]))
    return 200, ident.public(time.time())


async def delete_key(call: Call) -> Result:
    ident = await call.ctx.store.delete(f.name(call.params["name"]))
    return 200, {"name": ident.name, "kid": ident.kid, "deleted": True}


async def rotate_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    grace = f.seconds(call.body, "grace") or 0.0
    issued = await call.ctx.store.rotate(name, grace)
    return 200, {**issued.identity.public(time.time()), "key": issued.key}


async def revoke_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    kill = f.flag(call.body, "kill_streams")
    # Durable first (the store commits before returning), then end the streams: a stream
    # killed for a revocation that failed to persist would be a lie to the operator.
    ident = await call.ctx.store.revoke(name)
    killed = call.ctx.streams.kill(ident.kid) if kill else 0
    return 200, {**ident.public(time.time()), "streams_killed": killed}


async def import_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    secret = call.body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise UsageError("field 'secret' is required and must be a string")
    scopes, models = f.grants(call.body)
    limits = Limits().merged(f.limits(call.body))
    ident = await call.ctx.store.import_secret(
        name, secret, scopes, models, f.expires(call.body), limits
    )
    return 201, ident.public(time.time())


async def issue_token(call: Call) -> Result:
    name = f.name(call.params["name"])
    settings = call.ctx.tokens()
    ttl = f.seconds(call.body, "ttl")  # 0 is refused by issue_token, not "the default"
    if ttl is None:
        ttl = settings.default_ttl
    scopes = f.str_list(call.body, "scopes")
    ident = call.ctx.store.get(name)
    token, exp, granted = call.ctx.store.issue_token(ident, ttl, settings.max_ttl, scopes)
    return 200, {
        "name": name,
        "kid": ident.kid,
        "token": token,
        "expires_at": exp,
        "scopes": list(granted),
    }


async def rotate_signing(call: Call) -> Result:
    grace = f.seconds(call.body, "grace") or 0.0
    new = await call.ctx.store.rotate_signing_secret(grace)
    return 200, {"id": new.id, "signing_secrets": call.ctx.store.signing_status()}


def _subject(body: Mapping[str, Any]) -> str:
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject:
        raise UsageError("field 'subject' is required and must be a string")
    return subject


async def bind_cert(call: Call) -> Result:
    ident = await call.ctx.store.bind_cert(f.name(call.params["name"]), _subject(call.body))
    return 200, ident.public(time.time())


async def unbind_cert(call: Call) -> Result:
    ident = await call.ctx.store.unbind_cert(f.name(call.params["name"]), _subject(call.body))
    return 200, ident.public(time.time())


async def list_upstream_keys(call: Call) -> Result:
    return 200, {"upstream_keys": call.ctx.store.upstream_key_names()}


async def set_upstream_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    secret = call.body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise UsageError("field 'secret' is required and must be a string")
    await call.ctx.store.set_upstream_key(name, secret)
    return 200, {"name": name, "set": True}


async def delete_upstream_key(call: Call) -> Result:
    name = f.name(call.params["name"])
    await call.ctx.store.delete_upstream_key(name)
    return 200, {"name": name, "set": False}


async def reload(call: Call) -> Result:
    return 200, await call.ctx.reload()


_GRANTS = frozenset({"scopes", "models", "expires", "limits"})
_KEY = "/v1/keys/{name}"

OPERATIONS: tuple[Operation, ...] = (
    Operation("status", "GET", "/v1/status", frozenset(), status),
    Operation("list", "GET", "/v1/keys", frozenset(), list_keys),
    Operation("create", "POST", "/v1/keys", _GRANTS | {"name"}, create_key),
    Operation("show", "GET", _KEY, frozenset(), show_key),
    Operation("set", "POST", _KEY + "/set", _GRANTS, set_key),
    Operation("suspend", "POST", _KEY + "/suspend", frozenset({"kill_streams"}), suspend_key),
    Operation("resume", "POST", _KEY + "/resume", frozenset(), resume_key),
    Operation("delete", "POST", _KEY + "/delete", frozenset(), delete_key),
    Operation("rotate", "POST", _KEY + "/rotate", frozenset({"grace"}), rotate_key),
    Operation("revoke", "POST", _KEY + "/revoke", frozenset({"kill_streams"}), revoke_key),
    Operation("import", "POST", _KEY + "/import", _GRANTS | {"secret"}, import_key),
    Operation("token", "POST", _KEY + "/token", frozenset({"ttl", "scopes"}), issue_token),
    Operation("bind-cert", "POST", _KEY + "/bind-cert", frozenset({"subject"}), bind_cert),
    Operation("unbind-cert", "POST", _KEY + "/unbind-cert", frozenset({"subject"}), unbind_cert),
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
