"""Request targets → one canonical path, and the allow-list of upstream routes. Pure.

The policy decides on exactly the path that is forwarded: :func:`canonicalize` rejects
whatever could be read two ways (by us, by the upstream, or by anything between), and the
forwarded path is re-encoded from the decoded one. What is rejected (400):
raw or encoded dot segments, encoded ``/`` ``\\`` ``.`` ``%``, ``//``, NUL and control
characters, raw ``#``, bytes outside printable ASCII in the raw target, malformed percent
escapes, invalid UTF-8 after decoding, absolute-form and asterisk-form targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

# RFC 3986 pchar minus "%" (escapes are checked separately): what may stand raw in a path.
_PCHAR = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")
_QUERY = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]|{}^`\"<>]*$")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Escapes that decode to something with structural meaning, or to an escape again.
_FORBIDDEN_ESCAPES = re.compile(r"%(2[eEfF]|5[cC]|25|00)")
_SAFE = "/-._~!$&'()*+,;=:@"


class BadTarget(Exception):
    """The request target is refused; ``status`` is 400, 405 or 505, ``reason`` stable."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Target:
    path: str  # decoded, canonical: what the policy sees
    query: str  # raw query string (without "?"), checked for forbidden characters
    forward: str  # path + query as forwarded: re-encoded from ``path``

    @property
    def dialect(self) -> str:
        """Which error shape the client speaks: "openai" on /v1/..., else "ollama"."""
        return "openai" if self.path == "/v1" or "/v1/" in self.path + "/" else "ollama"


def canonicalize(raw: str, method: str = "GET") -> Target:
    if method == "CONNECT":
        raise BadTarget("method_not_allowed", "CONNECT is not supported", 405)
    if raw == "*":
        raise BadTarget("bad_target", "asterisk-form request targets are not accepted")
    if not raw.startswith("/"):
        raise BadTarget("bad_target", "only origin-form request targets (/path) are accepted")
    if not raw.isascii() or not raw.isprintable():
        raise BadTarget("bad_target", "the request target has characters outside printable ASCII")
    if "#" in raw:
        raise BadTarget("bad_target", "a fragment (#) is not allowed in a request target")
    raw_path, _, query = raw.partition("?")
    if not _PCHAR.match(raw_path) or (query and not _QUERY.match(query)):
        raise BadTarget("bad_target", "the request target has characters that must be escaped")
    if _ESCAPE.search(raw):
        raise BadTarget("bad_target", "malformed percent-escape in the request target")
    if _FORBIDDEN_ESCAPES.search(raw_path):
        raise BadTarget(
            "ambiguous_path", "encoded '.', '/', '\\', '%' or NUL in the path is not accepted"
        )
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("bad_target", "the path is not valid UTF-8 once decoded") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in path):
        raise BadTarget("bad_target", "control characters or '\\' in the path")
    segments = path.split("/")[1:]
    if any(s in (".", "..") for s in segments):
        raise BadTarget("ambiguous_path", "dot segments ('.', '..') are not accepted")
    if any(s == "" for s in segments[:-1]):
        raise BadTarget("ambiguous_path", "empty path segments ('//') are not accepted")
    forward = quote(path, safe=_SAFE) + (f"?{query}" if query else "")
    return Target(path=path, query=query, forward=forward)


# ---- the allow-list -------------------------------------------------------------------------

INFERENCE = "inference"
ADMIN = "admin"


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: str  # exact path, or ending in "/*" for "this prefix plus one or more segments"
    scope: str
    model_from: str = ""  # "body": JSON "model"/"name" (copy: source+destination); "path": tail
    upload: bool = False  # large streamed body (blobs): max_upload_bytes, never parsed

    def matches_path(self, path: str) -> bool:
        if self.pattern.endswith("/*"):
            head = self.pattern[:-1]
            return path.startswith(head) and len(path) > len(head) and not path.endswith("/")
        return path == self.pattern


def _r(methods: str, pattern: str, scope: str = INFERENCE, **kw: object) -> Route:
    return Route(frozenset(methods.split()), pattern, scope, **kw)  # type: ignore[arg-type]


ROUTES: tuple[Route, ...] = (
    # Ollama native API (docs/api.md)
    _r("GET HEAD", "/"),
    _r("GET HEAD", "/api/version"),
    _r("GET HEAD", "/api/tags"),
    _r("GET HEAD", "/api/ps"),
    _r("POST", "/api/show", model_from="body"),
    _r("POST", "/api/generate", model_from="body"),
    _r("POST", "/api/chat", model_from="body"),
    _r("POST", "/api/embed", model_from="body"),
    _r("POST", "/api/embeddings", model_from="body"),
    # Ollama model administration: the admin scope
    _r("POST", "/api/pull", ADMIN, model_from="body"),
    _r("POST", "/api/push", ADMIN, model_from="body"),
    _r("POST", "/api/create", ADMIN, model_from="body"),
    _r("POST", "/api/copy", ADMIN, model_from="body"),
    _r("DELETE", "/api/delete", ADMIN, model_from="body"),
    _r("HEAD POST", "/api/blobs/*", ADMIN, upload=True),
    # OpenAI-compatible (Ollama, llama.cpp server, vLLM, LocalAI)
    _r("GET", "/v1/models"),
    _r("GET", "/v1/models/*", model_from="path"),
    _r("POST", "/v1/chat/completions", model_from="body"),
    _r("POST", "/v1/completions", model_from="body"),
    _r("POST", "/v1/embeddings", model_from="body"),
    _r("POST", "/v1/responses", model_from="body"),
    _r("POST", "/v1/rerank", model_from="body"),
    _r("POST", "/v1/score", model_from="body"),
    # llama.cpp server and vLLM native endpoints
    _r("GET HEAD", "/health"),
    _r("GET", "/version"),
    _r("GET", "/props"),
    _r("POST", "/completion", model_from="body"),
    _r("POST", "/completions", model_from="body"),
    _r("POST", "/embedding", model_from="body"),
    _r("POST", "/embeddings", model_from="body"),
    _r("POST", "/infill", model_from="body"),
    _r("POST", "/rerank", model_from="body"),
    _r("POST", "/tokenize", model_from="body"),
    _r("POST", "/detokenize", model_from="body"),
    _r("POST", "/apply-template"),
    _r("GET", "/slots", ADMIN),
    _r("GET", "/metrics", ADMIN),
)


class RouteNotAllowed(BadTarget):
    pass


def match(method: str, path: str) -> Route:
    """The route for ``method path``; RouteNotAllowed (404 or 405) for everything else."""
    candidates = [r for r in ROUTES if r.matches_path(path)]
    if not candidates:
        raise RouteNotAllowed(
            "route_not_allowed", f"{path} is not a route this gateway serves", 404
        )
    for r in candidates:
        if method in r.methods:
            return r
    raise RouteNotAllowed("method_not_allowed", f"{method} is not allowed on {path}", 405)


def select_upstream(path: str, prefixes: tuple[str, ...]) -> tuple[int, str] | None:
    """(index of the upstream, path as that upstream sees it) by longest matching prefix."""
    best: tuple[int, str] | None = None
    best_len = -1
    for i, p in enumerate(prefixes):
        if p == "":
            if best_len < 0:
                best, best_len = (i, path), 0
        elif (path == p or path.startswith(p + "/")) and len(p) > best_len:
            best, best_len = (i, path[len(p) :] or "/"), len(p)
    return best


def encode(path: str, query: str) -> str:
    """The forwarded target: ``path`` re-encoded, the already-checked raw query appended."""
    return quote(path, safe=_SAFE) + (f"?{query}" if query else "")
