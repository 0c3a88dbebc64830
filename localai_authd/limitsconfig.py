"""The [limits] and [connections] config sections: what a key may cost the host by default,
and how long a connection may hold a socket. Pure (no aiohttp).

0 means "no limit" for every count and cap here and in a key's own limits (authctl set), so
that one key can be freed from a default without inventing a second spelling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from .durations import parse_duration


class Draft(Protocol):
    """What a section validator needs of configschema.Draft (a Protocol: configschema
    imports this module's schemas, so this module must not import it back)."""

    problems: list[str]

    def table(self, name: str) -> dict[str, Any]: ...


MAX_COUNT = 10**12  # a bound, not a policy: anything larger is a typo
MAX_CAP_SECONDS = 366 * 86400.0
OVER_CAP = ("clamp", "refuse")


@dataclass(frozen=True)
class LimitsConfig:
    """Defaults for every key; a key's own Limits (None = this default) win."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    tokens_per_day: int = 0
    concurrent_streams: int = 0
    # Ollama's keep_alive: -1 would pin a model in (V)RAM forever; the default cap lets a
    # model stay loaded an hour after its last use, then frees the memory for others.
    max_keep_alive: float = 3600.0
    max_num_ctx: int = 0
    over_cap: str = "clamp"  # clamp: forward the capped value; refuse: 400
    # Brute force, per source address, counted before any credential is checked.
    failed_auth_per_minute: int = 20
    failed_auth_cooldown: float = 300.0


@dataclass(frozen=True)
class ConnectionsConfig:
    header_timeout: float = 20.0  # a whole request head within this, or the socket closes
    idle_timeout: float = 60.0  # keep-alive: idle between requests
    max_per_source: int = 256
    max_total: int = 32768  # below LimitNOFILE=65536 with room for upstream sockets


def _count(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_COUNT:
        raise ValueError(f"expected a whole number from 0 (no limit) to {MAX_COUNT}, got {v!r}")
    return v


def _positive_count(v: Any) -> int:
    n = _count(v)
    if n == 0:
        raise ValueError("must be at least 1")
    return n


def _seconds(v: Any) -> float:
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError(f'expected a duration like "30s" or "10m", got {v!r}')
    d = parse_duration(v)
    if not math.isfinite(d) or d < 0:
        raise ValueError(f"expected a duration of zero or more, got {v!r}")
    return d


def _cap_seconds(v: Any) -> float:
    d = _seconds(v)
    if d > MAX_CAP_SECONDS:
        raise ValueError(f'at most 366 days ("366d"); 0 means no cap, got {v!r}')
    return d


def _timeout(limit: float) -> Any:
    def conv(v: Any) -> float:
        d = _seconds(v)
        if not 0 < d <= limit:
            raise ValueError(f"expected more than 0 and at most {limit:g}s, got {v!r}")
        return d

    return conv


def _over_cap(v: Any) -> str:
    if v not in OVER_CAP:
        raise ValueError(f'expected "clamp" or "refuse", got {v!r}')
    return str(v)


LIMITS_SCHEMA: dict[str, Any] = {
    "requests_per_minute": _count,
    "tokens_per_minute": _count,
    "tokens_per_day": _count,
    "concurrent_streams": _count,
    "max_keep_alive": _cap_seconds,
    "max_num_ctx": _count,
    "over_cap": _over_cap,
    "failed_auth_per_minute": _positive_count,
    "failed_auth_cooldown": _timeout(86400.0),
}
CONNECTIONS_SCHEMA: dict[str, Any] = {
    # Defaults stay within a head in 30 s and idle keep-alive of 60 s (no hoarding);
    # an operator may go longer for slow links, within an hour.
    "header_timeout": _timeout(3600.0),
    "idle_timeout": _timeout(3600.0),
    "max_per_source": _positive_count,
    "max_total": _positive_count,
}


def limits_section(d: Draft) -> dict[str, Any]:
    return {"limits": LimitsConfig(**d.table("limits"))}


def connections_section(d: Draft) -> dict[str, Any]:
    c = ConnectionsConfig(**d.table("connections"))
    if c.max_per_source > c.max_total:
        d.problems.append(
            "[connections] max_per_source is larger than max_total: lower max_per_source "
            "or raise max_total"
        )
    return {"connections": c}
