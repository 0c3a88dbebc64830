"""Model lists that follow the key: the upstream's list, filtered to what the key may use.

Ollama's ``/api/tags`` and ``/api/ps`` answer ``{"models": [{"name", "model", ...}]}``,
OpenAI's ``/v1/models`` ``{"data": [{"id", ...}]}``. For a key limited to models the answer
(small: one entry per installed model) is read whole, filtered and sent re-serialised; an
entry stays only if every name it carries is allowed. The upstream is asked for an identity
encoding; a gzip or deflate answer is decompressed, any other is refused (502), as is an
answer whose shape the gateway cannot filter: a list it could not read is never passed on.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
from aiohttp import web

from .. import modelref
from ..config import Upstream
from ..keys.model import Identity
from . import headers as hdrs
from .errors import SERVER, Refusal
from .forward import Outcome, open_upstream
from .routes import Route

MAX_LISTING_BYTES = 16 * 1024 * 1024
# Dropped from the upstream's headers: they describe the answer before filtering.
_STALE = frozenset({"content-length", "content-encoding", "etag", "content-md5", "digest"})


def kind_of(route_pattern: str) -> str:
    return "openai" if route_pattern.startswith("/v1/") else "ollama"


def _keep(entry: Any, fields: tuple[str, ...], allowed: tuple[str, ...]) -> bool:
    if not isinstance(entry, dict):
        return False
    names = [entry[f] for f in fields if entry.get(f) is not None]
    return bool(names) and all(isinstance(n, str) and modelref.allowed(n, allowed) for n in names)


def filter_listing(doc: Any, kind: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``doc`` with only the entries ``allowed`` reaches; ValueError if it is no listing."""
    key, fields = ("data", ("id",)) if kind == "openai" else ("models", ("name", "model"))
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise ValueError(f"not a model listing (no {key!r} list)")
    return {**doc, key: [e for e in doc[key] if _keep(e, fields, allowed)]}


def _decoded(raw: bytes, encoding: str) -> bytes:
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return raw
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise ValueError(f"content-encoding {enc!r}")
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    out = d.decompress(raw, MAX_LISTING_BYTES + 1)
    if len(out) > MAX_LISTING_BYTES or not d.eof:
        raise ValueError("compressed listing too large or truncated")
    return out


async def _read_whole(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes, to the end of the answer: ``read(n)`` alone returns as soon as
    any data is there (the first chunk of a long list)."""
    raw = bytearray()
    while len(raw) < limit:
        chunk = await content.read(limit - len(raw))
        if not chunk:
            break
        raw += chunk
    return bytes(raw)


async def relay_filtered(
    up: aiohttp.ClientResponse, kind: str, allowed: tuple[str, ...]
) -> web.Response:
    """The filtered answer to send. Refusal (502) if it cannot be read or filtered."""
    raw = await _read_whole(up.content, MAX_LISTING_BYTES + 1)
    if len(raw) > MAX_LISTING_BYTES:
        raise Refusal(
            502, "listing_too_large", "the upstream's model list is too large", "upstream_error"
        )
    headers = [(k, v) for k, v in hdrs.to_client(up.headers.items()) if k.lower() not in _STALE]
    if up.status != 200:
        # Errors carry no list; relayed as they are, in their own encoding.
        enc = up.headers.get("Content-Encoding")
        if enc:
            headers.append(("Content-Encoding", enc))
        return web.Response(status=up.status, body=raw, headers=[("Server", SERVER), *headers])
    try:
        doc = json.loads(_decoded(raw, up.headers.get("Content-Encoding", "")))
        body = json.dumps(filter_listing(doc, kind, allowed)).encode()
    except (ValueError, zlib.error, RecursionError) as e:
        raise Refusal(
            502,
            "listing_unreadable",
            f"the upstream's model list could not be filtered ({type(e).__name__})",
            "upstream_error",
        ) from None
    headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
    headers += [("Server", SERVER), ("Content-Type", "application/json; charset=utf-8")]
    return web.Response(status=200, body=body, headers=headers)


def identity_encoding(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The forwarded headers, asking for an answer the gateway can read without inflating."""
    kept = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
    return [*kept, ("Accept-Encoding", "identity")]


async def answer(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    target: str,
    fwd_headers: list[tuple[str, str]],
    route: Route,
    identity: Identity,
    out: Outcome,
) -> web.Response:
    """The model list for a key limited to models: read whole, filtered, re-serialised."""
    up = await open_upstream(session, "GET", upstream, target, identity_encoding(fwd_headers), None)
    try:
        resp = await relay_filtered(up, kind_of(route.pattern), identity.models)
    finally:
        up.close()
    out.status = resp.status
    out.bytes_out = len(resp.body) if isinstance(resp.body, bytes) else 0
    if resp.status >= 400:
        out.outcome, out.reason = "upstream_status", f"upstream_{resp.status}"
    return resp
