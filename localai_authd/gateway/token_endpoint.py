"""POST /localai-authd/token: a key holder trades its key for a time-limited token, and a
token holder refreshes its token before it expires, without the key.

Request body (JSON, optional): ``{"ttl": "1h" | seconds, "scopes": ["inference"]}``.
Answer: ``{"token", "token_type": "Bearer", "expires_at", "expires_in", "scopes"}``, where
``scopes`` is exactly what the new token carries.

A new token never carries more than the credential that asked for it: a key's scopes, or a
presenting token's (already narrowed) scopes. ``scopes`` may narrow that further; asking for
a scope the credential does not hold is a 403, an unknown scope a 400. A token is bound to
the key secret it came from (a refresh keeps that binding), so rotating the key past its
grace ends every token issued under the old secret.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..config import Config
from ..durations import parse_duration
from ..errors import AuthdError, PermissionDenied
from ..keys.store import KeyStore
from .errors import SERVER, Refusal
from .identify import Principal

MAX_BODY = 4096
MAX_SCOPES = 16


def _bad(message: str) -> Refusal:
    return Refusal(400, "invalid_request", message, "bad_request")


def _too_large() -> Refusal:
    return Refusal(
        413, "body_too_large", f"token requests are at most {MAX_BODY} bytes", "bad_request"
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    # read() may return one chunk of a chunked body: read to the end, capped.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad("the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    unknown = set(doc) - {"ttl", "scopes"}
    if unknown:
        raise _bad(f"unknown field {sorted(unknown)[0][:64]!r}: use ttl and scopes")
    return doc


def _ttl(doc: dict[str, Any], cfg: Config) -> float:
    raw = doc.get("ttl", cfg.tokens.default_ttl)
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise _bad('ttl must be a duration like "1h" or a number of seconds')
    try:
        ttl = parse_duration(raw)
    except ValueError as e:
        raise _bad(f"ttl: {e}") from None
    if not 0 < ttl <= cfg.tokens.max_ttl:
        raise _bad(f"ttl must be more than 0 and at most {cfg.tokens.max_ttl:g} seconds")
    return ttl


def _scopes(doc: dict[str, Any]) -> tuple[str, ...] | None:
    scopes = doc.get("scopes")
    if scopes is None:
        return None
    if not (
        isinstance(scopes, list)
        and 0 < len(scopes) <= MAX_SCOPES
        and all(isinstance(x, str) for x in scopes)
    ):
        raise _bad(f"scopes must be a list of 1 to {MAX_SCOPES} scope names")
    return tuple(scopes)


async def exchange_token(
    request: web.Request, principal: Principal, store: KeyStore, cfg: Config
) -> web.Response:
    doc = await _body(request)
    ttl = _ttl(doc, cfg)
    wanted = _scopes(doc)
    # For a token, principal.identity already carries the presenting token's scopes: the
    # new token starts from those, never from the key's.
    ident = principal.identity
    vid: str | None = None
    if principal.token:
        claims = store.token_claims(principal.secret, cfg.tokens.leeway, cfg.tokens.max_ttl)
        if claims is None:  # it verified a moment ago; it expired in between
            raise Refusal(401, "invalid_token", "invalid or expired token", "unauthenticated")
        vid = claims.vid
    elif principal.secret:
        vid = store.secret_vid(principal.secret)
    try:
        token, exp, granted = store.issue_token(ident, ttl, cfg.tokens.max_ttl, wanted, vid)
    except PermissionDenied as e:
        raise Refusal(403, "insufficient_scope", e.message) from None
    except AuthdError as e:  # UsageError, Conflict: words for the client
        raise _bad(e.message) from None
    return web.json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": exp,
            "expires_in": max(0, int(exp - store.now())),
            "scopes": list(granted),
        },
        headers={"Cache-Control": "no-store", "Server": SERVER},  # RFC 6749 §5.1
    )
