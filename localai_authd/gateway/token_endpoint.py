"""POST /localai-authd/token: a key holder trades its key for a time-limited token, and a
token holder refreshes its token before it expires, without the key.

Request body (JSON, optional): ``{"ttl": "1h" | seconds, "scopes": ["inference"]}``.
Answer: ``{"token", "token_type": "Bearer", "expires_at", "expires_in", "scopes"}``.
A token is bound to the key secret it came from (a refresh keeps that binding), so
rotating the key past its grace ends every token issued under the old secret.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..config import Config
from ..durations import parse_duration
from ..keys.store import KeyStore
from .errors import SERVER, Refusal
from .identify import Principal

MAX_BODY = 4096


def _bad(message: str) -> Refusal:
    return Refusal(400, "invalid_request", message, "bad_request")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refusal(
            413, "body_too_large", f"token requests are at most {MAX_BODY} bytes", "bad_request"
        )
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Refusal(
            413, "body_too_large", f"token requests are at most {MAX_BODY} bytes", "bad_request"
        )
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    unknown = set(doc) - {"ttl", "scopes"}
    if unknown:
        raise _bad(f"unknown field {sorted(unknown)[0]!r}: use ttl and scopes")
    return doc


async def exchange_token(
    request: web.Request, principal: Principal, store: KeyStore, cfg: Config
) -> web.Response:
    doc = await _body(request)
    try:
        ttl = parse_duration(doc.get("ttl", cfg.tokens.default_ttl))
    except ValueError as e:
        raise _bad(f"ttl: {e}") from None
    scopes = doc.get("scopes")
    if scopes is not None and not (
        isinstance(scopes, list) and all(isinstance(x, str) for x in scopes)
    ):
        raise _bad("scopes must be a list of scope names")
    ident = principal.identity
    vid: str | None = None
    if principal.token:
        claims = store.token_claims(principal.secret, cfg.tokens.leeway, cfg.tokens.max_ttl)
        if claims is None:  # it verified a moment ago; it expired in between
            raise Refusal(401, "invalid_token", "invalid or expired token", "unauthenticated")
        vid = claims.vid
    elif principal.secret:
        vid = store.secret_vid(principal.secret)
    wanted = tuple(scopes) if scopes is not None else None
    try:
        token, exp = store.issue_token(ident, ttl, cfg.tokens.max_ttl, wanted, vid)
    except Exception as e:  # UsageError / Conflict: words for the client
        message = getattr(e, "message", None)
        if message is None:
            raise
        raise _bad(message) from None
    granted = [s for s in ident.scopes if wanted is None or s in wanted]
    return web.json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": exp,
            "expires_in": max(0, int(exp - store.now())),
            "scopes": granted,
        },
        headers={"Cache-Control": "no-store", "Server": SERVER},  # RFC 6749 §5.1
    )
