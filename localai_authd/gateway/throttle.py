"""Failed authentications per source address, throttled before any credential is checked.

A source that fails ``per_minute`` times within a minute is refused (429, ``Retry-After``)
for ``cooldown`` seconds without its credentials being looked at, so guessing costs the
guesser time and costs us nothing. IPv6 sources count per /64 (one host usually owns a
whole /64 and could otherwise take a fresh address per guess). Pure; in memory; bounded.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_SOURCES = 65536  # the least recently failing source is forgotten beyond this


def source_key(addr: str | None) -> str:
    """The address a limit counts against: IPv4 as it is, IPv6 by its /64."""
    if not addr:
        return "-"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return addr


class _Source:
    __slots__ = ("blocked_until", "fails")

    def __init__(self, per_minute: int) -> None:
        self.fails: deque[float] = deque(maxlen=per_minute)
        self.blocked_until = 0.0


class AuthThrottle:
    def __init__(
        self, per_minute: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.cooldown = cooldown
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def configure(self, per_minute: int, cooldown: float) -> None:
        if per_minute != self.per_minute:
            self._sources.clear()
        self.per_minute, self.cooldown = per_minute, cooldown

    def retry_after(self, addr: str | None) -> float:
        """Seconds this source must still wait (0: it may try its credentials)."""
        if not self._sources:
            return 0.0
        src = self._sources.get(source_key(addr))
        if src is None:
            return 0.0
        return max(0.0, src.blocked_until - self._clock())

    def failed(self, addr: str | None) -> None:
        key = source_key(addr)
        src = self._sources.get(key)
        if src is None:
            src = self._sources[key] = _Source(self.per_minute)
            if len(self._sources) > MAX_SOURCES:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        now = self._clock()
        src.fails.append(now)
        if len(src.fails) == self.per_minute and now - src.fails[0] <= 60.0:
            src.blocked_until = now + self.cooldown
            src.fails.clear()
