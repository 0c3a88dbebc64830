"""The key store: the façade both planes use, composed of parts that each own their
keyring entry (:mod:`.table` the keys, :mod:`.signing` the token signing secrets,
:mod:`.upstream` the upstreams' own keys), all written through one :class:`Persistence`.

- Verification (:meth:`KeyStore.check`) is synchronous, in memory, constant-time, and does
  the same work whether the key id exists or not: one HMAC, then exactly two digest
  comparisons (the current and, during a rotation grace, the previous secret; dummies fill
  in); a refusal then looks the (keyed, so unguessable) digest up among retired secrets to
  say why.
- Every change builds a new table, writes it through the keyring thread and only then swaps
  the index: a change is durable before anyone is told it succeeded. Changes are serialised
  by the persistence lock.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from . import format as keyformat
from . import tokens as tok
from .changes import MAX_IMPORT_LEN, UNSET, Issued, KeyChanges
from .issuing import TokenIssuer
from .model import ACTIVE, DEFAULT_SCOPES, EXPIRED, REVOKED, SUSPENDED, Identity, Limits, Verifier
from .persist import Persistence, VaultLike
from .signing import SigningSecrets
from .table import KeyTable
from .upstream import UpstreamKeys
from .verdict import Reason, Verdict, refused_for

MAX_PRESENTED_LEN = MAX_IMPORT_LEN  # nothing longer was ever registered


__all__ = ["Issued", "KeyStore"]


class KeyStore:
    def __init__(self, vault: VaultLike, clock: Callable[[], float] = time.time) -> None:
        self._vault = vault
        self._clock = clock
        self._persist = persist = Persistence(vault)
        self._table = table = KeyTable(persist, clock)
        self.changes = KeyChanges(persist, table, clock)
        self.signing = SigningSecrets(persist, clock)
        self.upstream = UpstreamKeys(persist)
        self.tokens = TokenIssuer(table, self.signing, clock)
        self._dummy = Verifier(secrets.token_bytes(32), 0.0)

    @property
    def backend_name(self) -> str:
        return self._vault.backend_name

    @property
    def loaded(self) -> bool:
        """The pepper and key table came from the keyring (readiness: /localai-authd/ready)."""
        return bool(self._table.pepper)

    async def load(self) -> None:
        """Read every part from the keyring (creating pepper and signing secret on first
        start). Under the lock: a reload never interleaves with a change."""
        async with self._persist.lock:
            pepper, table = await self._persist.run(self._table.load_blocking)
            signing = await self._persist.run(self.signing.load_blocking)
            upstream = await self._persist.run(self.upstream.load_blocking)
            self._table.install(pepper, table)
            self.signing.install(signing)
            self.upstream.install(upstream)

    async def close(self) -> None:
        self._persist.close()

    # ---- the request path ----------------------------------------------------------------

    def digest(self, secret: str) -> bytes:
        return self._table.digest(secret)

    def check(self, presented: str) -> Verdict:
        """Whose live secret ``presented`` is, or precisely why it is refused."""
        t = self._table
        if not t.pepper or len(presented) > MAX_PRESENTED_LEN:
            return Verdict(None, "unknown_key")
        digest = t.digest(presented)
        parsed = keyformat.parse(presented) if presented.isascii() else None
        kid = parsed.kid if parsed is not None else None
        ident = t.by_kid.get(kid) if kid is not None else t.by_digest.get(digest)
        vs = ident.verifiers if ident is not None else ()
        hit = None
        # Always exactly two comparisons, whatever the table holds.
        for i in range(2):
            v = vs[i] if i < len(vs) else self._dummy
            if hmac.compare_digest(v.digest, digest):
                hit = v
        now = self._clock()
        if ident is not None and hit is not None and hit.live(now):
            reason = refused_for(ident, now)
            if reason is None:
                return Verdict(ident, "ok", ident.kid)
            return Verdict(None, reason, ident.kid)
        # Refused: only naming why costs a little more (a keyed digest, so the lookup tells
        # a guesser nothing).
        retired = t.by_retired.get(digest)
        if ident is None:
            if retired is not None:
                why: Reason = "revoked" if retired.state == REVOKED else "secret_retired"
                return Verdict(None, why, retired.kid)
            return Verdict(None, "unknown_key", kid)
        if hit is not None or (retired is not None and retired.kid == ident.kid):
            gone: Reason = "revoked" if ident.state == REVOKED else "secret_retired"
            return Verdict(None, gone, ident.kid)
        return Verdict(None, "wrong_secret", ident.kid)

    def verify(self, presented: str) -> Identity | None:
        """The identity ``presented`` belongs to, if it is a live secret of a usable key."""
        return self.check(presented).identity

    def check_basic(self, name: str, secret: str) -> Verdict:
        """HTTP Basic: the secret must verify and belong to the key called ``name``."""
        verdict = self.check(secret)
        expected = verdict.identity.name if verdict.identity is not None else "\0"
        same = hmac.compare_digest(
            expected.encode("utf-8", "surrogateescape"), name.encode("utf-8", "surrogateescape")
        )
        if verdict.identity is not None and not same:
            return Verdict(None, "wrong_secret", verdict.kid)
        return verdict

    def check_token(self, token: str, leeway: float, max_ttl: float) -> Verdict:
        return self.tokens.check(token, leeway, max_ttl)

    def check_cert(self, subject: str) -> Verdict:
        """The key a client-certificate name is bound to, or why it may not be used."""
        ident = self._table.by_subject.get(subject)
        if ident is None:
            return Verdict(None, "unknown_key")
        reason = refused_for(ident, self._clock())
        if reason is not None:
            return Verdict(None, reason, ident.kid)
        return Verdict(ident, "ok", ident.kid)

    def now(self) -> float:
        return self._clock()

    def secret_vid(self, presented: str) -> str | None:
        """Which of its key's secrets ``presented`` is (for binding a token to it)."""
        ident = self.verify(presented)
        if ident is None:
            return None
        digest = self.digest(presented)
        for v in ident.verifiers:
            if hmac.compare_digest(v.digest, digest):
                return v.vid
        return None

    # ---- tokens, signing secrets, upstream keys: the parts, behind the same names --------

    def issue_token(
        self,
        ident: Identity,
        ttl: float,
        max_ttl: float,
        scopes: tuple[str, ...] | None = None,
        vid: str | None = None,
    ) -> tuple[str, int, tuple[str, ...]]:
        return self.tokens.issue(ident, ttl, max_ttl, scopes, vid)

    def token_claims(self, token: str, leeway: float, max_ttl: float) -> tok.Claims | None:
        return self.tokens.claims(token, leeway, max_ttl)

    async def rotate_signing_secret(self, grace: float = 0.0) -> tok.SigningSecret:
        return await self.signing.rotate(grace)

    def signing_status(self) -> list[dict[str, Any]]:
        return self.signing.status()

    def upstream_key(self, name: str) -> str | None:
        return self.upstream.get(name)

    def upstream_key_names(self) -> list[str]:
        return self.upstream.names()

    async def set_upstream_key(self, name: str, secret: str) -> None:
        await self.upstream.set(name, secret)

    async def delete_upstream_key(self, name: str) -> None:
        await self.upstream.delete(name)

    # ---- reading -------------------------------------------------------------------------

    def get(self, name: str) -> Identity:
        return self._table.get(name)

    def all(self) -> list[Identity]:
        return sorted(self._table.by_name.values(), key=lambda i: i.name)

    def counts(self) -> dict[str, int]:
        now = self._clock()
        out: dict[str, int] = {"total": 0, ACTIVE: 0, REVOKED: 0, EXPIRED: 0, SUSPENDED: 0}
        for i in self._table.by_name.values():
            out["total"] += 1
            out[i.status(now)] += 1
        return out

    # ---- changes: durable before they return ---------------------------------------------

    async def create(
        self,
        name: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
        limits: Limits | None = None,
    ) -> Issued:
        return await self.changes.create(name, scopes, models, expires, limits)

    async def import_secret(
        self,
        name: str,
        secret: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
        limits: Limits | None = None,
    ) -> Identity:
        return await self.changes.import_secret(name, secret, scopes, models, expires, limits)

    async def rotate(self, name: str, grace: float = 0.0) -> Issued:
        return await self.changes.rotate(name, grace)

    async def revoke(self, name: str) -> Identity:
        return await self.changes.revoke(name)

    async def edit(
        self,
        name: str,
        scopes: tuple[str, ...] | None = None,
        models: tuple[str, ...] | None = None,
        expires: Any = UNSET,
        limits: dict[str, Any] | None = None,
    ) -> Identity:
        return await self.changes.edit(name, scopes, models, expires, limits)

    async def suspend(self, name: str) -> Identity:
        return await self.changes.set_suspended(name, True)

    async def resume(self, name: str) -> Identity:
        return await self.changes.set_suspended(name, False)

    async def delete(self, name: str) -> Identity:
        return await self.changes.delete(name)

    async def bind_cert(self, name: str, subject: str) -> Identity:
        return await self.changes.bind_cert(name, subject)

    async def unbind_cert(self, name: str, subject: str) -> Identity:
        return await self.changes.unbind_cert(name, subject)
