"""Resource caps on an Ollama request body: ``keep_alive`` and ``options.num_ctx``. Pure.

``keep_alive`` (how long the model stays loaded after the request) is a number of seconds
or a Go duration string ("5m", "1h30m"); a negative value pins the model until the server
stops. ``options.num_ctx`` sizes the context (and the memory it takes). Above a key's cap the
value is clamped to the cap (the body is then re-serialized, so the upstream acts on exactly
what was checked) or the request is refused, as ``[limits] over_cap`` says.

Ollama decodes with Go's encoding/json: top-level keys match case-insensitively (Unicode
simple folding) and the last match wins; ``options`` is a map, read by exact key. So every
top-level spelling of ``keep_alive`` / ``options`` is checked, and a clamp replaces all of
them by the one canonical key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# Go's time.ParseDuration units, in seconds.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d*\.?\d*)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
FOREVER = math.inf


class BadValue(ValueError):
    pass


@dataclass(frozen=True)
class Caps:
    max_keep_alive: float = 0.0  # seconds; 0 = no cap
    max_num_ctx: int = 0  # 0 = no cap
    refuse: bool = False  # False: clamp


@dataclass(frozen=True)
class Decision:
    changed: bool  # the body must be re-serialized
    refused: str = ""  # "": allowed; else the reason ("cap:keep_alive", "cap:num_ctx")
    message: str = ""


def go_duration(s: str) -> float:
    """Seconds, as Go's time.ParseDuration reads ``s`` (BadValue where Go errs)."""
    rest = s
    sign = 1.0
    if rest[:1] in ("-", "+"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise BadValue(f"invalid duration {s!r}")
    total = 0.0
    pos = 0
    while pos < len(rest):
        m = _PART.match(rest, pos)
        if m is None or m.group(1) in ("", "."):
            raise BadValue(f"invalid duration {s!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def keep_alive_seconds(v: Any) -> float:
    """What Ollama makes of a keep_alive value: seconds, FOREVER for negatives."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise BadValue('keep_alive must be a number of seconds or a duration like "5m"')
    try:
        secs = go_duration(v) if isinstance(v, str) else float(v)
    except OverflowError:  # an integer literal past float64: Go cannot decode it either
        raise BadValue("keep_alive is out of range") from None
    if math.isnan(secs):
        raise BadValue("keep_alive is not a number")
    return FOREVER if secs < 0 else secs


def _fold(s: str) -> str:
    # Go's EqualFold: simple (one-to-one) case folding, so U+017F (long s) ~ "s" and
    # U+212A (Kelvin sign) ~ "k".
    return "".join(c.casefold() if len(c.casefold()) == 1 else c for c in s)


def _folded(k: str) -> str:
    # ASCII keys fold as ASCII (cheap); only non-ASCII ones can hide a Kelvin sign or long s.
    return k.lower() if k.isascii() else _fold(k)


def _keys(doc: dict[str, Any], name: str) -> list[str]:
    return [k for k in doc if _folded(k) == name]


def apply(doc: dict[str, Any], caps: Caps) -> tuple[dict[str, Any], Decision]:
    """``doc`` with keep_alive and options.num_ctx within ``caps``, and what was done."""
    out = doc
    changed = False
    if caps.max_keep_alive > 0:
        for key in _keys(doc, "keep_alive"):
            value = doc[key]
            if value is None:
                continue  # Go leaves the pointer nil: the server's default applies
            try:
                secs = keep_alive_seconds(value)
            except BadValue as e:
                return doc, Decision(False, "bad_keep_alive", str(e))
            if secs > caps.max_keep_alive:
                if caps.refuse:
                    return doc, Decision(
                        False,
                        "cap:keep_alive",
                        f"keep_alive {value!r} is over this key's cap of {caps.max_keep_alive:g}s",
                    )
                changed = True
        if changed:
            out = {k: v for k, v in doc.items() if _folded(k) != "keep_alive"}
            cap = caps.max_keep_alive
            out["keep_alive"] = int(cap) if cap == int(cap) else cap
    if caps.max_num_ctx > 0:
        for key in _keys(out, "options"):
            opts = out[key]
            if not isinstance(opts, dict) or "num_ctx" not in opts:
                continue
            n = opts["num_ctx"]
            if isinstance(n, bool) or not isinstance(n, int | float):
                continue  # Ollama refuses a num_ctx that is not a number itself
            if not n <= caps.max_num_ctx:  # "not <=": NaN is over every cap
                if caps.refuse:
                    return doc, Decision(
                        False,
                        "cap:num_ctx",
                        f"options.num_ctx {n!r} is over this key's cap of {caps.max_num_ctx}",
                    )
                if out is doc:
                    out = dict(doc)
                out[key] = {**opts, "num_ctx": caps.max_num_ctx}
                changed = True
    return out, Decision(changed)
