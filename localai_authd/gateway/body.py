"""Request bodies read the way the upstream will read them. Pure.

Ollama decodes a body with Go's ``encoding/json`` (gin's ShouldBindJSON): object keys match
struct fields case-insensitively with Unicode simple folding (U+017F long s is ``s``, the Kelvin
sign U+212A is ``k``), the last of several matching keys wins, invalid UTF-8 and lone surrogates
become U+FFFD, and whatever follows the first JSON value is ignored. Python's ``json`` reads
keys exactly. Where the two could disagree, the body is refused (400) rather than guessed at, so
the object the gateway decides on is the one the upstream acts on, and the bytes forwarded are
the bytes checked (no re-serialisation: cheaper on large bodies, and no second encoder whose
output could differ). Refused:

- an empty body, bytes that are not UTF-8 (a BOM included), anything but one JSON object,
  data after it, ``NaN``/``Infinity`` and numbers that overflow (Go refuses them too);
- nesting deeper than Python's parser goes (Go would go on to 10000 levels);
- in any object: two keys that fold to the same name (``model`` twice, ``model`` and
  ``Model``), a key with U+017F or U+212A (the two non-ASCII letters that fold to ASCII), a key
  with a lone surrogate (``\\ud800``, which Go turns into U+FFFD);
- at the top level: a key with an upper-case letter. Every request field of the Ollama and
  OpenAI APIs is spelled in lower case, and Go would bind ``Model`` or ``Keep_Alive`` to a
  field the gateway did not see.
"""

from __future__ import annotations

import json
import math
from typing import Any

_FOLDS_TO_ASCII = ("\u017f", "\u212a")  # long s, Kelvin sign: Go folds them to s and k


class BodyError(Exception):
    """The body cannot be inspected as the upstream would read it; ``reason`` is stable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _check_odd_key(key: str) -> None:
    if any(c in key for c in _FOLDS_TO_ASCII):
        raise BodyError(
            "ambiguous_key", f"the key {key!r} folds to another name in Go's JSON decoder"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError(
            "invalid_unicode", "a key holds a lone surrogate (\\ud800-\\udfff)"
        ) from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise BodyError("duplicate_key", f"the key {dup[:64]!r} appears more than once")
    for k in doc:
        if not k.isascii():
            _check_odd_key(k)
    if len({k.lower() for k in doc}) != len(doc):
        raise BodyError(
            "ambiguous_key", "two keys differ only in case (Go's JSON decoder reads them as one)"
        )
    return doc


def _constant(name: str) -> Any:
    raise BodyError("number_out_of_range", f"{name} is not a JSON number")


def _float(text: str) -> float:
    f = float(text)
    if math.isinf(f):
        raise BodyError("number_out_of_range", f"the number {text[:40]} overflows")
    return f


# Built once: json.loads(**hooks) would build a decoder per call (4 us of a small request).
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object ``body`` holds, exactly as Go's decoder would bind it; else BodyError."""
    if not body.strip():
        raise BodyError("body_empty", "this route needs a JSON object in the request body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body_not_utf8", "the request body is not valid UTF-8") from None
    try:
        doc = _DECODER.decode(text)
    except RecursionError:
        raise BodyError("body_too_deep", "the request body is nested too deeply") from None
    except json.JSONDecodeError as e:
        reason = "body_trailing_data" if e.msg == "Extra data" else "body_not_json"
        raise BodyError(reason, f"the request body is not one JSON value ({e.msg})") from None
    except ValueError:  # int() past sys.get_int_max_str_digits()
        raise BodyError("number_out_of_range", "a number in the body is too long") from None
    if not isinstance(doc, dict):
        raise BodyError("body_not_object", "the request body must be a JSON object")
    for k in doc:
        if k.lower() != k:
            raise BodyError(
                "ambiguous_key",
                f"the key {k[:64]!r} has upper-case letters (request fields are lower case)",
            )
    return doc


def no_body_allowed(method: str) -> bool:
    """GET and HEAD carry no body here: an upstream that ignores one would read it as the
    next request on the pooled connection (smuggling)."""
    return method in ("GET", "HEAD")
