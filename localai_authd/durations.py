"""Durations as people type them: ``90``, ``90s``, ``15m``, ``1h``, ``2d``, ``1h30m``.

Always a finite number of seconds from 0 to :data:`MAX_DURATION`: JSON and TOML both
carry ``NaN``, ``Infinity`` and ``1e308``, and a digit string can be as long as a request.
"""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d{1,12})([smhdw])")
_NUMBER = re.compile(r"\d{1,12}")
MAX_DURATION = 100 * 366 * 86400.0  # 100 years: longer is a typo or an attack
_HINT = "expected a duration like 30s, 15m, 1h or 7d"


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; raises ValueError with a message fit for a user."""
    if isinstance(text, bool):
        raise ValueError(f"{_HINT}, got a boolean")
    if isinstance(text, int | float):
        seconds = float(text) if abs(text) < 1e300 else math.inf
    elif isinstance(text, str):
        s = text.lower()  # no strip: "1h\n" is not a duration
        if _NUMBER.fullmatch(s):
            seconds = float(s)
        elif s and _PART.sub("", s) == "":
            seconds = float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(s)))
        else:
            raise ValueError(f"{_HINT}, got {text[:40]!r}")
    else:
        raise ValueError(f"{_HINT}, got {type(text).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, got {text!r}")
    if seconds < 0:
        raise ValueError(f"a duration must not be negative, got {text!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 100 years, got {str(text)[:40]!r}")
    return seconds
