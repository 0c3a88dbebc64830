"""Durations as people type them: ``90``, ``90s``, ``15m``, ``1h``, ``2d``, ``1h30m``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; raises ValueError with a message fit for a user."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 30s, 15m, 1h or 7d, got a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    s = text.strip().lower()
    if s.isdigit():
        return float(s)
    if not s or _PART.sub("", s) != "":
        raise ValueError(f"expected a duration like 30s, 15m, 1h or 7d, got {text!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(s)))


def format_duration(seconds: float) -> str:
    s = int(seconds)
    if s <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out.append(f"{s // size}{unit}")
            s %= size
    return "".join(out)
