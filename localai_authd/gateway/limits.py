"""Per-key rate limits, token budgets and concurrent streams, on the `limits` library.

Moving windows (``MovingWindowRateLimiter``) on the library's async storage interface: one
host uses its ``MemoryStorage``; a fleet would hand in a shared one (Redis) unchanged.

Tokens are known only after an answer ends, so a request is admitted while its key's budget
is not yet exhausted, and its tokens are charged when it ends. A moving window keeps one
entry per unit it counts, so token budgets are counted in units of budget/1024 tokens (at
most 1024 entries per key and window; the fraction of a unit is carried to the next charge).
A charge is capped at what is left of the window: the library's windows refuse entries
beyond their limit, so one request can overdraw a budget once but leaves it exhausted.

Fail closed: if the storage fails, the request is refused (503), never waved through.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from ..keys.model import Limits
from ..limitsconfig import LimitsConfig
from .errors import Refusal

log = logging.getLogger("localai_authd.limits")
UNITS = 1024  # the most entries a token window keeps per key

# Answers that cost tokens: their tokens are counted (and charged to budgets).
TOKEN_PATHS = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/completion",
        "/completions",
        "/embedding",
        "/embeddings",
        "/infill",
    }
)


@dataclass(frozen=True)
class Effective:
    """A key's limits in force: its own, else the config's default; 0 = no limit."""

    requests_per_minute: int
    tokens_per_minute: int
    tokens_per_day: int
    concurrent_streams: int
    max_keep_alive: float
    max_num_ctx: int


@functools.lru_cache(maxsize=1024)  # per request; both arguments are frozen (hashable)
def effective(own: Limits, defaults: LimitsConfig) -> Effective:
    def pick(mine: float | None, default: float) -> float:
        return default if mine is None else mine

    return Effective(
        int(pick(own.requests_per_minute, defaults.requests_per_minute)),
        int(pick(own.tokens_per_minute, defaults.tokens_per_minute)),
        int(pick(own.tokens_per_day, defaults.tokens_per_day)),
        int(pick(own.concurrent_streams, defaults.concurrent_streams)),
        float(pick(own.max_keep_alive, defaults.max_keep_alive)),
        int(pick(own.max_num_ctx, defaults.max_num_ctx)),
    )


def _limited(name: str, message: str, retry_after: float) -> Refusal:
    seconds = max(1, math.ceil(retry_after))
    return Refusal(
        429,
        f"limit:{name}",
        f"{message}; retry in {seconds}s",
        "rate_limited",
        [("Retry-After", str(seconds))],
    )


def check_streams(eff: Effective, in_flight: int) -> None:
    """Refuse (429) a request of a key that has ``in_flight`` requests running already."""
    if eff.concurrent_streams and in_flight >= eff.concurrent_streams:
        raise _limited(
            "concurrent_streams",
            f"this key already has {in_flight} requests in flight (limit {eff.concurrent_streams})",
            1,
        )


class _TokenWindow:
    """A token budget as a moving window of units of ``budget / UNITS`` tokens."""

    def __init__(self, name: str, budget: int, per_day: bool) -> None:
        self.name = name
        self.units = min(budget, UNITS)
        self.unit = budget / self.units
        self.item: RateLimitItem = (
            RateLimitItemPerDay(self.units) if per_day else RateLimitItemPerMinute(self.units)
        )


class Limiter:
    def __init__(self, storage: Storage | None = None) -> None:
        self.storage: Storage = storage or MemoryStorage()
        if not isinstance(self.storage, MovingWindowSupport):
            raise TypeError(f"{type(self.storage).__name__} has no moving windows")
        self._mw = MovingWindowRateLimiter(self.storage)
        self._carry: dict[tuple[str, str, int], float] = {}

    @staticmethod
    def _windows(eff: Effective) -> list[_TokenWindow]:
        out = []
        if eff.tokens_per_minute:
            out.append(_TokenWindow("tokens_per_minute", eff.tokens_per_minute, False))
        if eff.tokens_per_day:
            out.append(_TokenWindow("tokens_per_day", eff.tokens_per_day, True))
        return out

    async def admit(self, kid: str, eff: Effective, in_flight: int) -> None:
        """Raise a Refusal (429 over a limit, 503 if the limiter fails); else count it.

        The stream count is checked here first (a refusal that costs no storage call), and
        again by the gateway with no await between the check and the registration.
        """
        check_streams(eff, in_flight)
        try:
            for w in self._windows(eff):
                if not await self._mw.test(w.item, w.name, kid):
                    reset = (await self._mw.get_window_stats(w.item, w.name, kid)).reset_time
                    raise _limited(
                        w.name,
                        f"this key's token budget ({w.name.replace('_', ' ')}) is spent",
                        reset - time.time(),
                    )
            if eff.requests_per_minute:
                item = RateLimitItemPerMinute(eff.requests_per_minute)
                if not await self._mw.hit(item, "requests_per_minute", kid):
                    reset = (
                        await self._mw.get_window_stats(item, "requests_per_minute", kid)
                    ).reset_time
                    raise _limited(
                        "requests_per_minute",
                        f"this key may make {eff.requests_per_minute} requests per minute",
                        reset - time.time(),
                    )
        except Refusal:
            raise
        except Exception:
            # Whatever the storage raised: we cannot tell whether the key is within its
            # limits, so it is not let through.
            log.exception("the rate limiter failed; refusing the request")
            raise Refusal(
                503,
                "limiter_unavailable",
                "the rate limiter is unavailable; try again shortly",
                "unavailable",
                [("Retry-After", "5")],
            ) from None

    async def charge(self, kid: str, eff: Effective, tokens: int) -> None:
        """Charge ``tokens`` spent by a request of ``kid`` that has ended."""
        if tokens <= 0:
            return
        for w in self._windows(eff):
            slot = (w.name, kid, w.units)
            want = tokens / w.unit + self._carry.pop(slot, 0.0)
            units = int(want)
            if want - units > 0:
                if len(self._carry) >= 65536:  # bounded: keys come and go
                    self._carry.clear()
                self._carry[slot] = want - units
            if not units:
                continue
            try:
                stats = await self._mw.get_window_stats(w.item, w.name, kid)
                units = min(units, stats.remaining)
                if units > 0:
                    await self._mw.hit(w.item, w.name, kid, cost=units)
            except Exception:
                log.exception("the rate limiter failed to charge %d tokens to %s", tokens, kid)
