"""The token signing secrets: one keyring entry, ``token-signing``, owned here.

A rotation with a grace keeps the replaced secret valid for that long (tokens name the
secret that signed them); a rotation without grace is the emergency case and ends every
older secret at once, graced ones included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from ..errors import KeyringUnavailable, UsageError
from . import tokens as tok
from .model import MAX_GRACE_SECONDS
from .persist import Persistence

SIGNING_ENTRY = "token-signing"


def _sane(s: tok.SigningSecret) -> tok.SigningSecret:
    # A stored time that is not a finite number cannot be compared meaningfully: a
    # not_after like that ends the secret (fail closed), a bad created time sorts first.
    created = s.created if math.isfinite(s.created) else 0.0
    not_after = s.not_after
    if not_after is not None and not (
        isinstance(not_after, int | float) and math.isfinite(not_after)
    ):
        not_after = 0.0
    return tok.SigningSecret(s.id, s.secret, created, not_after)


class SigningSecrets:
    def __init__(self, persist: Persistence, clock: Callable[[], float]) -> None:
        self._persist = persist
        self._clock = clock
        self._secrets: dict[str, tok.SigningSecret] = {}

    def load_blocking(self) -> dict[str, tok.SigningSecret]:
        """Read (or, on first start, create) the secrets; runs on the keyring thread."""
        vault = self._persist.vault
        raw = vault.get(SIGNING_ENTRY)
        if raw is None:
            first = tok.SigningSecret.new(self._clock())
            vault.set(SIGNING_ENTRY, json.dumps([first.to_json()]))
            return {first.id: first}
        try:
            items = [_sane(tok.SigningSecret.from_json(d)) for d in json.loads(raw)]
        except (ValueError, KeyError, TypeError) as e:
            raise KeyringUnavailable(f"the token signing secrets are unreadable: {e}") from e
        if not any(s.not_after is None for s in items):
            raise KeyringUnavailable("the token signing secrets hold no current secret")
        return {s.id: s for s in items}

    def install(self, secrets: dict[str, tok.SigningSecret]) -> None:
        self._secrets = secrets

    def verify(self, token: str, leeway: float, max_ttl: float) -> tok.Claims | None:
        return tok.verify(token, self._secrets, self._clock(), leeway, max_ttl)

    def check(
        self, token: str, leeway: float, max_ttl: float
    ) -> tuple[tok.Claims | None, tok.TokenRefusal, str | None]:
        return tok.check(token, self._secrets, self._clock(), leeway, max_ttl)

    def current(self) -> tok.SigningSecret:
        live = [s for s in self._secrets.values() if s.not_after is None]
        return max(live, key=lambda s: s.created)

    async def rotate(self, grace: float = 0.0) -> tok.SigningSecret:
        """A new signing secret; tokens signed by older ones live ``grace`` more seconds.

        With ``grace`` 0 every older secret ends now. With a grace, no older secret's end
        moves later than it already was.
        """
        if not (math.isfinite(grace) and 0 <= grace <= MAX_GRACE_SECONDS):
            raise UsageError(f"grace must be 0 to {MAX_GRACE_SECONDS:g} seconds")
        async with self._persist.lock:
            now = self._clock()
            new = tok.SigningSecret.new(now)
            kept: list[tok.SigningSecret] = []
            if grace > 0:
                for s in self._secrets.values():
                    end = now + grace if s.not_after is None else min(s.not_after, now + grace)
                    if end > now:
                        kept.append(tok.SigningSecret(s.id, s.secret, s.created, end))
            items = {s.id: s for s in (*kept, new)}
            await self._persist.write(
                SIGNING_ENTRY, json.dumps([s.to_json() for s in items.values()])
            )
            self._secrets = items
            return new

    def status(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {"id": s.id, "created": s.created, "valid_until": s.not_after}
            for s in sorted(self._secrets.values(), key=lambda s: s.created)
            if s.live(now)
        ]
