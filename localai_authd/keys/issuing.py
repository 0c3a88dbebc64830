"""Tokens bound to identities: issue them, and verify them against the live key table.

A token names its key (kid), the key secret it was issued under (vid) and, always, the
scopes it carries: a token is never wider than what asked for it. A key narrowed later
narrows its tokens too (verification intersects with the key's scopes at that moment);
a key widened later does not widen tokens issued before.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import Conflict, PermissionDenied, UsageError
from . import tokens as tok
from .model import Identity, check_scopes
from .signing import SigningSecrets
from .table import KeyTable
from .verdict import Verdict, refused_for


class TokenIssuer:
    def __init__(
        self, table: KeyTable, signing: SigningSecrets, clock: Callable[[], float]
    ) -> None:
        self._table = table
        self._signing = signing
        self._clock = clock

    def check(self, token: str, leeway: float, max_ttl: float) -> Verdict:
        """The identity a token speaks for, with the token's scopes; or why not.

        Stateless: no token is stored. A token dies with its expiry, its key (revoked,
        suspended or expired), the key secret it was issued under (rotated out past its
        grace), and its signing secret.
        """
        claims, why, kid = self._signing.check(token, leeway, max_ttl)
        if claims is None:
            assert why != "ok"
            return Verdict(None, why, kid)
        now = self._clock()
        ident = self._table.by_kid.get(claims.kid)
        if ident is None:
            return Verdict(None, "unknown_key", claims.kid)
        reason = refused_for(ident, now)
        if reason is not None:
            return Verdict(None, reason, ident.kid)
        if not any(v.vid == claims.vid and v.live(now) for v in ident.verifiers):
            return Verdict(None, "secret_retired", ident.kid)
        if claims.scopes is None:
            return Verdict(ident, "ok", ident.kid)
        narrowed = tuple(s for s in ident.scopes if s in claims.scopes)
        return Verdict(ident.with_(scopes=narrowed), "ok", ident.kid)

    def claims(self, token: str, leeway: float, max_ttl: float) -> tok.Claims | None:
        return self._signing.verify(token, leeway, max_ttl)

    def issue(
        self,
        ident: Identity,
        ttl: float,
        max_ttl: float,
        scopes: tuple[str, ...] | None = None,
        vid: str | None = None,
    ) -> tuple[str, int, tuple[str, ...]]:
        """A token for ``ident`` valid ``ttl`` seconds, or until the key expires if that is
        sooner: (token, expiry, scopes it carries).

        ``ident.scopes`` is what the asking credential holds (for a token refresh, the
        presenting token's scopes, already narrowed); ``scopes`` may only narrow that, never
        widen it (PermissionDenied). ``vid`` binds the token to the secret that asked for it
        (the current one when not given).
        """
        now = self._clock()
        if not ident.usable(now):
            raise Conflict(f"key {ident.name!r} is {ident.status(now)}")
        if not 0 < ttl <= max_ttl:  # also false for NaN
            raise UsageError(f"a token's lifetime must be more than 0 and at most {max_ttl:g}s")
        if scopes is None:
            granted = ident.scopes
        else:
            problem = check_scopes(scopes)
            if problem:
                raise UsageError(problem)
            extra = [x for x in scopes if x not in ident.scopes]
            if extra:
                raise PermissionDenied(
                    f"scope {extra[0]!r} is not held by the credential asking for the token "
                    f"(it holds {', '.join(ident.scopes) or 'none'})"
                )
            granted = tuple(s for s in ident.scopes if s in scopes)
        if not granted:
            raise PermissionDenied("a token needs at least one scope")
        live = [v for v in ident.verifiers if v.live(now)]
        if vid is None:
            current = [v for v in live if v.not_after is None] or live
            if not current:
                raise Conflict(f"key {ident.name!r} has no live secret")
            vid = current[0].vid
        elif not any(v.vid == vid for v in live):
            raise Conflict(f"the secret of key {ident.name!r} that asked has been rotated out")
        exp = int(now + ttl)
        if ident.expires is not None:
            # Never past the key's own end: such a token would claim a lifetime it does not
            # have, and come back if the key were later given a longer expiry.
            exp = min(exp, int(ident.expires))
            if exp <= now:
                raise Conflict(f"key {ident.name!r} expires within the second")
        claims = tok.Claims(ident.kid, vid, int(now), exp, granted)
        return tok.mint(self._signing.current(), claims), exp, granted
