"""Tokens and their signing secrets: the part of the key store that tokens need.

A mixin of :class:`~localai_authd.keys.store.KeyStore` (it uses the store's index, lock,
vault and clock). The signing secrets live in the keyring entry ``token-signing``; a
rotation keeps the previous secret valid for a grace period, so tokens carry the id of the
secret that signed them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, KeyringUnavailable, UsageError
from . import tokens as tok
from .model import Identity, check_scopes

if TYPE_CHECKING:
    from .store import VaultLike

SIGNING_ENTRY = "token-signing"


class TokenMixin:
    # Provided by KeyStore.
    _signing: dict[str, tok.SigningSecret]
    _by_kid: dict[str, Identity]
    _clock: Callable[[], float]
    _lock: asyncio.Lock
    _vault: VaultLike

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def _load_signing_blocking(self) -> dict[str, tok.SigningSecret]:
        raw = self._vault.get(SIGNING_ENTRY)
        if raw is None:
            first = tok.SigningSecret.new(self._clock())
            self._vault.set(SIGNING_ENTRY, json.dumps([first.to_json()]))
            return {first.id: first}
        try:
            items = [tok.SigningSecret.from_json(d) for d in json.loads(raw)]
        except (ValueError, KeyError, TypeError) as e:
            raise KeyringUnavailable(f"the token signing secrets are unreadable: {e}") from e
        return {s.id: s for s in items}

    def verify_token(self, token: str, leeway: float, max_ttl: float) -> Identity | None:
        """The identity a token speaks for, with its scopes narrowed as the token says.

        Stateless: no token is stored. A token dies with its expiry, its key (revoked or
        expired), the key secret it was issued under (rotated out past its grace), and its
        signing secret.
        """
        now = self._clock()
        claims = tok.verify(token, self._signing, now, leeway, max_ttl)
        if claims is None:
            return None
        ident = self._by_kid.get(claims.kid)
        if ident is None or not ident.usable(now):
            return None
        if not any(v.vid == claims.vid and v.live(now) for v in ident.verifiers):
            return None
        if claims.scopes is None:
            return ident
        return ident.with_(scopes=tuple(s for s in ident.scopes if s in claims.scopes))

    def issue_token(
        self,
        ident: Identity,
        ttl: float,
        max_ttl: float,
        scopes: tuple[str, ...] | None = None,
        vid: str | None = None,
        not_after: float | None = None,
    ) -> tuple[str, int]:
        """A token for ``ident`` valid ``ttl`` seconds; (token, expiry as a Unix time).

        ``vid`` binds it to the secret that asked for it (the current one when not given);
        ``not_after`` caps its expiry (a refreshed token may not outlive its predecessor's
        key secret being rotated out, which the vid already ensures).
        """
        now = self._clock()
        if not ident.usable(now):
            raise Conflict(f"key {ident.name!r} is {ident.status(now)}")
        if not 0 < ttl <= max_ttl:
            raise UsageError(f"a token's lifetime must be more than 0 and at most {max_ttl:g}s")
        if scopes is not None:
            problem = check_scopes(scopes)
            if problem:
                raise UsageError(problem)
            extra = [x for x in scopes if x not in ident.scopes]
            if extra:
                raise UsageError(f"key {ident.name!r} has no scope {extra[0]!r} to give a token")
        live = [v for v in ident.verifiers if v.live(now)]
        if vid is None:
            current = [v for v in live if v.not_after is None] or live
            if not current:
                raise Conflict(f"key {ident.name!r} has no live secret")
            vid = current[0].vid
        signing = self.current_signing_secret()
        exp = int(now + ttl) if not_after is None else int(min(now + ttl, not_after))
        claims = tok.Claims(
            ident.kid,
            vid,
            int(now),
            exp,
            tuple(dict.fromkeys(scopes)) if scopes is not None else None,
        )
        return tok.mint(signing, claims), exp

    def token_claims(self, token: str, leeway: float, max_ttl: float) -> tok.Claims | None:
        return tok.verify(token, self._signing, self._clock(), leeway, max_ttl)

    def current_signing_secret(self) -> tok.SigningSecret:
        live = [s for s in self._signing.values() if s.not_after is None]
        return max(live, key=lambda s: s.created)

    async def rotate_signing_secret(self, grace: float = 0.0) -> tok.SigningSecret:
        """A new token signing secret; tokens signed by the old one live ``grace`` more seconds."""
        if grace < 0:
            raise UsageError("grace must not be negative")
        async with self._lock:
            now = self._clock()
            new = tok.SigningSecret.new(now)
            kept = [
                tok.SigningSecret(s.id, s.secret, s.created, now + grace)
                for s in self._signing.values()
                if s.not_after is None and grace > 0
            ] + [s for s in self._signing.values() if s.not_after is not None and s.live(now)]
            items = {s.id: s for s in (*kept, new)}
            doc = json.dumps([s.to_json() for s in items.values()])
            await self._run(self._vault.set, SIGNING_ENTRY, doc)
            self._signing = items
            return new

    def signing_status(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {"id": s.id, "created": s.created, "valid_until": s.not_after}
            for s in sorted(self._signing.values(), key=lambda s: s.created)
            if s.live(now)
        ]
