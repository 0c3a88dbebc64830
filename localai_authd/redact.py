"""What looks like a credential, and text with it taken out. Pure.

"Looks like" is deliberately wider than "is": the point is that no answer, log line, audit
record or forwarded URL ever holds a key or a token, even a truncated, re-cased or encoded
one. What counts:

- our prefixes (``sk_local_`` keys, ``tk_local_`` tokens; see keys/format.py and
  keys/tokens.py), in any case, with ``_`` or ``-``, followed by anything or nothing;
- a key with its prefix cut off: 12 base62 characters (the key id), ``_``, then 16 or more
  base62 characters with digits and both cases (the random secret);
- a base64url JSON object (``eyJ...``): the payload of our tokens, and of JWTs;
- any of these inside a base64 blob (``Basic`` credentials are base64 of ``name:key``);
- any of these after percent-decoding, up to three times (``%5F``, ``%255F``, ``+``).
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote

from .keys import format as keyformat
from .keys import tokens

REDACTED = "[redacted]"

_PREFIXES = "|".join(
    re.escape(p.rstrip("_")).replace("_", "[_-]") for p in (keyformat.PREFIX, tokens.PREFIX)
)
# The prefix must not be glued to a word before it ("task_local" is no key).
_PREFIXED = re.compile(rf"(?i)(?<![A-Za-z0-9])(?:{_PREFIXES})(?:[_-][A-Za-z0-9_-]*)?")
# A key without its prefix: key id, "_", secret with digits and both cases.
_UNPREFIXED = re.compile(
    r"(?<![A-Za-z0-9])[0-9A-Za-z]{12}_(?=[0-9A-Za-z]*[0-9])(?=[0-9A-Za-z]*[A-Z])"
    r"(?=[0-9A-Za-z]*[a-z])[0-9A-Za-z]{16,}"
)
# base64url of a JSON object: token and JWT payloads.
_JSON64 = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")
_DIRECT = re.compile("|".join(p.pattern for p in (_PREFIXED, _UNPREFIXED, _JSON64)))
# A base64 run long enough to hold "x:" and a prefix; runs of lowercase only are words,
# paths and media types ("application/x-ndjson"), never base64 of text.
_BLOB = re.compile(r"[A-Za-z0-9+/_-]{20,}=*")
_DECODE_ROUNDS = 3
_URLSAFE = str.maketrans("-_", "+/")
# A run that _BLOB could match, found from its start only (linear time).
_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20}")


def _in_blob(blob: str) -> bool:
    """Does this base64 (standard or url-safe) run decode to something credential-like?"""
    data = blob.rstrip("=").translate(_URLSAFE).encode("ascii")
    for start in range(4):  # the run may begin mid-blob (glued to what came before)
        part = data[start:]
        part = part[: len(part) - len(part) % 4]
        if len(part) < 12:
            break
        try:
            raw = binascii.a2b_base64(part)
        except binascii.Error:
            continue
        if _direct(raw.decode("latin-1")):
            return True
    return False


def _maybe(text: str) -> bool:
    """Whatever any check needs to see at least once. Most text (a path, a media type, a
    method) has none of it and is cleared here, by substring tests and one linear scan:
    this runs on every request's target, forwarded header values and audit fields."""
    if "_" in text or "%" in text or "+" in text:
        return True
    low = text.lower()
    return "local" in low or "eyj" in low or _RUN.search(text) is not None


def marked(text: str) -> bool:
    """The cheap part of :func:`looks_like_credential`: a key or token prefix, or a
    base64url JSON payload, as they are (no decoding, no unprefixed keys, no blobs)."""
    return bool(
        ("local" in text.lower() and _PREFIXED.search(text))
        or ("eyJ" in text and _JSON64.search(text))
    )


def _direct(text: str) -> bool:
    # Each pattern only where its cheap marker is: this runs on every request's path, query
    # and forwarded header values, and the regexes alone cost microseconds per call.
    return bool(
        ("local" in text.lower() and _PREFIXED.search(text))
        or ("_" in text and _UNPREFIXED.search(text))
        or ("eyJ" in text and _JSON64.search(text))
    )


def _plain(text: str) -> bool:
    if _direct(text):
        return True
    return any(_in_blob(b) for m in _BLOB.finditer(text) if not (b := m.group()).islower())


def looks_like_credential(text: str) -> bool:
    """True if ``text`` holds anything that looks like a key or token (see the module doc)."""
    if not _maybe(text):
        return False
    for _ in range(_DECODE_ROUNDS + 1):
        if _plain(text):
            return True
        if "%" not in text and "+" not in text:
            return False
        decoded = unquote(text.replace("+", " "), errors="replace")
        if decoded == text:
            return False
        text = decoded
    return _plain(text)


def redact(text: str) -> str:
    """``text`` with every credential-like part replaced; wholly replaced if what looks like
    a credential cannot be cut out on its own (encoded, inside a blob)."""
    if not looks_like_credential(text):
        return text
    cut = _DIRECT.sub(REDACTED, text)
    cut = _BLOB.sub(lambda m: REDACTED if _plain(m.group()) else m.group(), cut)
    return REDACTED if looks_like_credential(cut) else cut
