"""Request targets → one canonical path. Pure.

The policy decides on exactly the path that is forwarded: :func:`canonicalize` rejects
whatever could be read two ways (by us, by the upstream, or by anything between), and the
forwarded path is re-encoded from the decoded one. What is rejected (400):
raw or encoded dot segments, encoded ``/`` ``\\`` ``.`` ``%``, ``//``, NUL and control
characters, raw ``#``, bytes outside printable ASCII in the raw target, malformed percent
escapes, invalid UTF-8 after decoding, absolute-form and asterisk-form targets, and anything
that looks like a credential in the path or the query (localai_authd/redact.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from ..redact import looks_like_credential
from .refusal import BadTarget, Dialect

# RFC 3986 pchar minus "%" (escapes are checked separately): what may stand raw in a path.
_PCHAR = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")  # fullmatch: "$" allows a final \n
_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]|{}^`\"<>]*")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Escapes that decode to something with structural meaning, or to an escape again.
_FORBIDDEN_ESCAPES = re.compile(r"%(2[eEfF]|5[cC]|25|00)")
_SAFE = "/-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class Target:
    path: str  # decoded, canonical: what the policy sees
    query: str  # raw query string (without "?"), checked for forbidden characters

    @property
    def dialect(self) -> Dialect:
        """Which error shape the client speaks: "openai" on /v1/..., else "ollama"."""
        return "openai" if self.path == "/v1" or "/v1/" in self.path + "/" else "ollama"


# Pure, and asked the same few targets over and over: remembered (bounded; refusals raise
# and are not kept). bench/: about 2 % of a small request's CPU. 256 entries: a target is at
# most a request line (8 KiB), so a client inventing targets pins at most a few MiB.
@functools.lru_cache(maxsize=256)
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
    if not _PCHAR.fullmatch(raw_path) or (query and not _QUERY.fullmatch(query)):
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
    # A key or token in the URL is refused, not forwarded: URLs end up in the upstream's
    # logs, proxies' logs and browser histories. (The check decodes what it reads.)
    if looks_like_credential(path) or looks_like_credential(query):
        raise BadTarget(
            "credential_in_url",
            "a credential in the URL is refused: send it in the Authorization header",
        )
    return Target(path=path, query=query)


@functools.lru_cache(maxsize=256)
def encode(path: str, query: str) -> str:
    """The forwarded target: ``path`` re-encoded, the already-checked raw query appended."""
    return quote(path, safe=_SAFE) + (f"?{query}" if query else "")
