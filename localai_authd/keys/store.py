"""The key store: an in-memory index for the request path, persisted through the keyring.

- Verification (:meth:`KeyStore.verify`) is synchronous, in memory, constant-time, and does
  the same work whether the key id exists or not: one HMAC, then exactly two digest
  comparisons (the current and, during a rotation grace, the previous secret; dummies fill in).
- Every change builds a new table, writes it through the vault (a worker thread; keyring calls
  can block on D-Bus) and only then swaps the index: a change is durable before anyone is told
  it succeeded. The whole table is one keyring entry, so a write is all-or-nothing; kill -9
  leaves the old table or the new one. Changes are serialised by one lock.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Conflict, KeyringUnavailable, NotFound, UsageError
from . import format as keyformat
from . import tokens as tok
from .model import (
    ACTIVE,
    DEFAULT_SCOPES,
    REVOKED,
    Identity,
    Verifier,
    check_cert_subject,
    check_models,
    check_name,
    check_scopes,
)
from .signing import TokenMixin
from .upstream import UpstreamKeysMixin

TABLE_ENTRY = "keys"
PEPPER_ENTRY = "pepper"
TABLE_VERSION = 1
MIN_IMPORT_LEN = 16
MAX_IMPORT_LEN = 512


class VaultLike(Protocol):
    backend_name: str

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class Issued:
    """A key just minted: the identity and its secret, which is shown exactly once."""

    identity: Identity
    key: str


class KeyStore(TokenMixin, UpstreamKeysMixin):
    def __init__(self, vault: VaultLike, clock: Callable[[], float] = time.time) -> None:
        self._vault = vault
        self._clock = clock
        self._lock = asyncio.Lock()
        # One worker: keyring calls are serialised and never run on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyring")
        self._pepper = b""
        self._by_name: dict[str, Identity] = {}
        self._by_kid: dict[str, Identity] = {}
        self._by_digest: dict[bytes, Identity] = {}
        self._by_subject: dict[str, Identity] = {}
        self._signing: dict[str, tok.SigningSecret] = {}
        self._upstream_keys: dict[str, str] = {}
        self._dummy = Verifier(secrets.token_bytes(32), 0.0)

    @property
    def backend_name(self) -> str:
        return self._vault.backend_name

    @property
    def loaded(self) -> bool:
        """The pepper and key table came from the keyring (readiness: /localai-authd/ready)."""
        return bool(self._pepper)

    # ---- loading -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def load(self) -> None:
        """Read pepper and table from the keyring (creating the pepper on first start)."""
        pepper, table, signing = await self._run(self._load_blocking)
        self._pepper = pepper
        self._install(table)
        self._signing = signing
        self._upstream_keys = await self._run(self._load_upstream_keys_blocking)

    def _load_blocking(
        self,
    ) -> tuple[bytes, dict[str, Identity], dict[str, tok.SigningSecret]]:
        raw = self._vault.get(PEPPER_ENTRY)
        if raw is None:
            if self._vault.get(TABLE_ENTRY) is not None:
                # Keys without their pepper can never verify again: refuse, don't "repair".
                raise KeyringUnavailable(
                    "the keyring holds a key table but no pepper; refusing to start "
                    "(restore the keyring, or remove the key table to start over)"
                )
            self._vault.set(PEPPER_ENTRY, secrets.token_hex(32))
            raw = self._vault.get(PEPPER_ENTRY)
            if raw is None:
                raise KeyringUnavailable("the keyring did not keep the pepper it was given")
        pepper = bytes.fromhex(raw)
        blob = self._vault.get(TABLE_ENTRY)
        table: dict[str, Identity] = {}
        if blob is not None:
            try:
                doc = json.loads(blob)
                if doc.get("version") != TABLE_VERSION:
                    raise ValueError(f"unknown key table version {doc.get('version')!r}")
                for d in doc["keys"]:
                    ident = Identity.from_json(d)
                    table[ident.name] = ident
            except (ValueError, KeyError, TypeError) as e:
                raise KeyringUnavailable(f"the key table in the keyring is unreadable: {e}") from e
        return pepper, table, self._load_signing_blocking()

    def _install(self, table: dict[str, Identity]) -> None:
        self._by_name = dict(table)
        self._by_kid = {i.kid: i for i in table.values()}
        # Secrets not in our format (imported, possibly in a rotation grace) are found by
        # their keyed digest; ours by the key id they carry.
        self._by_digest = {v.digest: i for i in table.values() for v in i.verifiers}
        self._by_subject = {
            subj: i for i in table.values() if i.state == ACTIVE for subj in i.cert_subjects
        }

    async def _commit(self, table: dict[str, Identity]) -> None:
        """Persist ``table``, then make it the live index. Caller holds the lock."""
        now = self._clock()
        pruned = {
            n: i.with_(verifiers=tuple(v for v in i.verifiers if v.live(now)))
            for n, i in table.items()
        }
        doc = {"version": TABLE_VERSION, "keys": [i.to_json() for i in pruned.values()]}
        await self._run(self._vault.set, TABLE_ENTRY, json.dumps(doc, sort_keys=True))
        self._install(pruned)

    # ---- the request path ----------------------------------------------------------------

    def digest(self, secret: str) -> bytes:
        return hmac.new(self._pepper, secret.encode("utf-8", "surrogateescape"), "sha256").digest()

    def verify(self, presented: str) -> Identity | None:
        """The identity ``presented`` belongs to, if it is a live secret of a usable key."""
        if not self._pepper or len(presented) > MAX_IMPORT_LEN:
            return None
        digest = self.digest(presented)
        parsed = keyformat.parse(presented) if presented.isascii() else None
        ident = self._by_kid.get(parsed.kid) if parsed is not None else self._by_digest.get(digest)
        vs = ident.verifiers if ident is not None else ()
        now = self._clock()
        ok = False
        # Always exactly two comparisons, whatever the table holds.
        for i in range(2):
            v = vs[i] if i < len(vs) else self._dummy
            match = hmac.compare_digest(v.digest, digest)
            ok |= match and v.live(now)
        if not ok or ident is None or not ident.usable(now):
            return None
        return ident

    def verify_basic(self, name: str, secret: str) -> Identity | None:
        """HTTP Basic: the secret must verify and belong to the key called ``name``."""
        ident = self.verify(secret)
        expected = ident.name if ident is not None else "\0"
        same = hmac.compare_digest(
            expected.encode("utf-8", "surrogateescape"), name.encode("utf-8", "surrogateescape")
        )
        return ident if same else None

    def by_cert_subject(self, subject: str) -> Identity | None:
        ident = self._by_subject.get(subject)
        return ident if ident is not None and ident.usable(self._clock()) else None

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

    # ---- reading -------------------------------------------------------------------------

    def get(self, name: str) -> Identity:
        ident = self._by_name.get(name)
        if ident is None:
            raise NotFound(f"no key named {name!r}")
        return ident

    def by_kid(self, kid: str) -> Identity | None:
        return self._by_kid.get(kid)

    def all(self) -> list[Identity]:
        return sorted(self._by_name.values(), key=lambda i: i.name)

    def counts(self) -> dict[str, int]:
        now = self._clock()
        out: dict[str, int] = {"total": 0, ACTIVE: 0, REVOKED: 0, "expired": 0}
        for i in self._by_name.values():
            out["total"] += 1
            out[i.status(now)] += 1
        return out

    # ---- changes -------------------------------------------------------------------------

    def _new_name_ok(self, name: str) -> None:
        problem = check_name(name)
        if problem:
            raise UsageError(problem)
        old = self._by_name.get(name)
        if old is not None and old.state != REVOKED:
            raise Conflict(f"a key named {name!r} exists; rotate it, or revoke it first")

    @staticmethod
    def _check_grants(scopes: tuple[str, ...], models: tuple[str, ...]) -> None:
        problem = check_scopes(scopes) or check_models(models)
        if problem:
            raise UsageError(problem)

    def _new_kid(self) -> str:
        while True:
            kid = keyformat.new_kid()
            if kid not in self._by_kid:
                return kid

    async def create(
        self,
        name: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
    ) -> Issued:
        async with self._lock:
            self._new_name_ok(name)
            self._check_grants(scopes, models)
            now = self._clock()
            if expires is not None and expires <= now:
                raise UsageError("the expiry is in the past")
            kid = self._new_kid()
            key = keyformat.mint(kid)
            ident = Identity(
                kid=kid,
                name=name,
                scopes=tuple(dict.fromkeys(scopes)),
                models=tuple(dict.fromkeys(models)),
                created=now,
                expires=expires,
                verifiers=(Verifier.new(self.digest(key), now),),
            )
            await self._commit({**self._by_name, name: ident})
            return Issued(ident, key)

    async def import_secret(
        self,
        name: str,
        secret: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
    ) -> Identity:
        """Register an existing secret (a static key users migrate from) under ``name``."""
        async with self._lock:
            self._new_name_ok(name)
            self._check_grants(scopes, models)
            if not (MIN_IMPORT_LEN <= len(secret) <= MAX_IMPORT_LEN):
                raise UsageError(
                    f"an imported secret must be {MIN_IMPORT_LEN} to {MAX_IMPORT_LEN} characters"
                )
            if not secret.isascii() or not secret.isprintable() or " " in secret:
                raise UsageError("an imported secret must be printable ASCII without spaces")
            if keyformat.looks_like_key(secret):
                raise UsageError("that is already a localai-authd key; it needs no import")
            digest = self.digest(secret)
            if digest in self._by_digest:
                raise Conflict("that secret is already registered to another key")
            now = self._clock()
            ident = Identity(
                kid=self._new_kid(),
                name=name,
                scopes=tuple(dict.fromkeys(scopes)),
                models=tuple(dict.fromkeys(models)),
                created=now,
                expires=expires,
                imported=True,
                verifiers=(Verifier.new(digest, now),),
            )
            await self._commit({**self._by_name, name: ident})
            return ident

    async def rotate(self, name: str, grace: float = 0.0) -> Issued:
        """A new secret for ``name``; the current one stays valid for ``grace`` seconds."""
        if grace < 0:
            raise UsageError("grace must not be negative")
        async with self._lock:
            old = self.get(name)
            now = self._clock()
            if not old.usable(now):
                raise Conflict(f"key {name!r} is {old.status(now)}; it cannot be rotated")
            key = keyformat.mint(old.kid)
            # Keep only the secret being replaced: a rotation inside a grace period ends the
            # older grace at once, so there are never more than two live secrets.
            current = [v for v in old.verifiers if v.not_after is None]
            kept = tuple(
                Verifier(v.digest, v.created, now + grace, v.vid) for v in current[-1:] if grace > 0
            )
            ident = old.with_(
                verifiers=(Verifier.new(self.digest(key), now), *kept),
                rotated_at=now,
                imported=False,
            )
            await self._commit({**self._by_name, name: ident})
            return Issued(ident, key)

    async def revoke(self, name: str) -> Identity:
        async with self._lock:
            old = self.get(name)
            if old.state == REVOKED:
                return old
            now = self._clock()
            ident = old.with_(state=REVOKED, revoked_at=now, verifiers=())
            await self._commit({**self._by_name, name: ident})
            return ident

    async def bind_cert(self, name: str, subject: str) -> Identity:
        """Map a client-certificate name (CN or SAN, per listener) to key ``name``."""
        problem = check_cert_subject(subject)
        if problem:
            raise UsageError(problem)
        async with self._lock:
            ident = self.get(name)
            other = self._by_subject.get(subject)
            if other is not None and other.name != name:
                raise Conflict(f"certificate subject {subject!r} is bound to key {other.name!r}")
            if subject in ident.cert_subjects:
                return ident
            new = ident.with_(cert_subjects=(*ident.cert_subjects, subject))
            await self._commit({**self._by_name, name: new})
            return new

    async def unbind_cert(self, name: str, subject: str) -> Identity:
        async with self._lock:
            ident = self.get(name)
            if subject not in ident.cert_subjects:
                raise NotFound(f"key {name!r} has no certificate subject {subject!r}")
            subjects = tuple(x for x in ident.cert_subjects if x != subject)
            new = ident.with_(cert_subjects=subjects)
            await self._commit({**self._by_name, name: new})
            return new

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
