"""What one request has shown so far (its context), and the audit record it becomes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..keys.model import Identity
from ..redact import redact
from . import routes
from .errors import Dialect
from .forward import Outcome
from .identify import Principal
from .limits import Effective
from .tokencount import Tokens

# Called with each request's audit record and its context (metrics, usage).
RecordHook = Callable[[dict[str, Any], "Ctx"], None]


@dataclass
class Ctx:
    """What one request has shown so far; it becomes the audit record."""

    request_id: str
    started: float
    dialect: Dialect = "ollama"
    path: str = ""
    identity: Identity | None = None
    principal: Principal | None = None
    special: str = ""  # "token": our own token endpoint, not an upstream route; "verify"
    method: str = ""  # forward-auth: the original request's method (else the request's own)
    route: routes.Route | None = None
    upstream: int = 0
    forward_target: str = ""
    client_headers: list[tuple[str, str]] = field(default_factory=list)  # what may go on
    models: list[str] | None = None
    doc: dict[str, Any] | None = None  # the JSON body the upstream will act on (body.py)
    limits: Effective | None = None  # set once admitted
    tokens: Tokens | None = None
    bytes_in: int = 0
    out: Outcome = field(default_factory=Outcome)
    expect_done: bool = False
    audited: bool = False
    presented_kid: str | None = None  # the key id a refused credential carried


CTX: web.RequestKey[Ctx] = web.RequestKey("localai_authd.ctx", Ctx)


class RequestIds:
    """Random 64-bit request ids (16 hex digits), drawn from the OS 512 at a time:
    ``secrets.token_hex(8)`` per request costs a getrandom() call each (~2% of the CPU of
    a small request, measured in bench/)."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def next(self) -> str:
        pos = self._pos
        if pos >= len(self._buf):
            self._buf, pos = os.urandom(4096), 0
        self._pos = pos + 8
        return self._buf[pos : pos + 8].hex()


def record(request: web.Request, ctx: Ctx) -> dict[str, Any]:
    """The audit record of a request (never a secret: client-chosen text is redacted)."""
    ident = ctx.identity
    rec: dict[str, Any] = {
        "kind": "request",
        "request_id": ctx.request_id,
        "key_id": ident.kid if ident else ctx.presented_kid,
        "key": ident.name if ident else None,
        "auth": ctx.principal.method if ctx.principal else None,
        "client": request.remote,
        # Client-chosen text is redacted: a method, path or model name may be a key.
        "method": redact(ctx.method or request.method),
        "path": redact(ctx.path) if ctx.path else None,
        "model": redact(ctx.models[0]) if ctx.models else None,
        "status": ctx.out.status,
        "bytes_in": ctx.bytes_in,
        "bytes_out": ctx.out.bytes_out,
        "duration_ms": round((time.monotonic() - ctx.started) * 1000, 3),
        "outcome": ctx.out.outcome,
        "reason": ctx.out.reason,
    }
    if ctx.tokens is not None:
        rec.update(ctx.tokens.audit_fields())
    return rec
