"""What a request may cost before it is let in, and what it cost once it has ended.

The gateway's one seam for what bounds a key's blast radius: the per-source brute-force
throttle around authentication, a key's limits at admission, its resource caps on the body,
and the token charge after the answer. Each piece lives in its own module (throttle, limits,
caps, tokencount); this joins them to the request and turns their verdicts into Refusals.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from ..keys.model import Identity
from ..limitsconfig import LimitsConfig
from . import caps
from .errors import Refusal
from .limits import Effective, Limiter, effective
from .throttle import AuthThrottle
from .tokencount import TokenMeter, Tokens

T = TypeVar("T")


class Admission:
    def __init__(self, cfg: LimitsConfig, limiter: Limiter | None = None) -> None:
        self.cfg = cfg
        self.limiter = limiter or Limiter()
        self.throttle = AuthThrottle(cfg.failed_auth_per_minute, cfg.failed_auth_cooldown)
        self.pending: set[asyncio.Task[None]] = set()  # token charges under way

    def configure(self, cfg: LimitsConfig) -> None:
        self.cfg = cfg
        self.throttle.configure(cfg.failed_auth_per_minute, cfg.failed_auth_cooldown)

    def authenticate(self, source: str | None, check: Callable[[], T]) -> T:
        """``check()`` (the credentials), unless ``source`` has failed too often already."""
        wait = self.throttle.retry_after(source)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Refusal(
                429,
                "auth_throttled",
                f"too many failed authentications from this address; retry in {seconds}s",
                "throttled",
                [("Retry-After", str(seconds))],
            )
        try:
            return check()
        except Refusal as r:
            if r.status in (400, 401):
                self.throttle.failed(source)
            raise

    async def admit(self, identity: Identity, in_flight: int) -> Effective:
        """The key's limits in force; a Refusal (429, or 503) if it is over one."""
        eff = effective(identity.limits, self.cfg)
        await self.limiter.admit(identity.kid, eff, in_flight)
        return eff

    def cap(self, doc: dict[str, Any], eff: Effective) -> dict[str, Any] | None:
        """``doc`` clamped to the key's caps if it had to be; None if it is fine as it is."""
        limits = caps.Caps(eff.max_keep_alive, eff.max_num_ctx, self.cfg.over_cap == "refuse")
        out, decision = caps.apply(doc, limits)
        if decision.refused:
            raise Refusal(400, decision.refused, decision.message, "bad_request")
        return out if decision.changed else None

    def charge(
        self, kid: str, eff: Effective | None, meter: TokenMeter, request_bytes: int
    ) -> Tokens:
        """The tokens of an answer that has ended, charged to the key in the background."""
        tokens = meter.result(request_bytes)
        # A task only where there is a token budget to charge.
        if eff is not None and (eff.tokens_per_minute or eff.tokens_per_day) and tokens.total:
            t = asyncio.get_running_loop().create_task(self.limiter.charge(kid, eff, tokens.total))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)
        return tokens


def reserialize(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
