"""Changes to the key table: create, import, rotate, revoke, edit, suspend, resume, delete,
and certificate bindings. Each runs under the persistence lock and commits the whole new
table before it returns (see :mod:`.table`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, NotFound, UsageError
from . import format as keyformat
from . import tokens as tok
from .model import (
    ACTIVE,
    DEFAULT_SCOPES,
    LIMIT_FIELDS,
    MAX_GRACE_SECONDS,
    REVOKED,
    SUSPENDED,
    Identity,
    Limits,
    Verifier,
    check_cert_subject,
    check_models,
    check_name,
    check_scopes,
    limit_problem,
)
from .persist import Persistence
from .table import KeyTable

MIN_IMPORT_LEN = 16
MAX_IMPORT_LEN = 512
# The furthest a key may be set to expire: a bound, not policy.
MAX_EXPIRY_SECONDS = 100 * 366 * 86400.0


class _Unset:
    pass


UNSET: Any = _Unset()  # "leave as is", for the fields of an edit that may also be None


@dataclass(frozen=True)
class Issued:
    """A key just minted: the identity and its secret, which is shown exactly once."""

    identity: Identity
    key: str


def check_limits(changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name not in LIMIT_FIELDS:
            raise UsageError(f"unknown limit {name!r}: known limits are {', '.join(LIMIT_FIELDS)}")
        problem = limit_problem(name, value)
        if problem:
            raise UsageError(problem)


class KeyChanges:
    def __init__(self, persist: Persistence, table: KeyTable, clock: Callable[[], float]) -> None:
        self._persist = persist
        self._table = table
        self._clock = clock

    async def _commit(self, ident: Identity) -> None:
        await self._table.commit({**self._table.by_name, ident.name: ident})

    def _check_expiry(self, expires: float | None) -> None:
        if expires is None:
            return
        now = self._clock()
        if not (isinstance(expires, int | float) and math.isfinite(expires)):
            raise UsageError("the expiry must be a finite time")
        if expires <= now:
            raise UsageError("the expiry is in the past")
        if expires > now + MAX_EXPIRY_SECONDS:
            raise UsageError("the expiry is more than 100 years away")

    def _new_name_ok(self, name: str) -> None:
        problem = check_name(name)
        if problem:
            raise UsageError(problem)
        old = self._table.by_name.get(name)
        if old is not None and old.state != REVOKED:
            raise Conflict(f"a key named {name!r} exists; rotate it, or revoke it first")

    def _check_new(
        self,
        name: str,
        scopes: tuple[str, ...],
        models: tuple[str, ...],
        expires: float | None,
        limits: Limits | None,
    ) -> None:
        """What a new key (created or imported) must pass before anything is written."""
        self._new_name_ok(name)
        self._check_grants(scopes, models)
        self._check_expiry(expires)
        check_limits((limits or Limits()).to_json())

    @staticmethod
    def _check_grants(scopes: tuple[str, ...], models: tuple[str, ...]) -> None:
        problem = check_scopes(scopes) or check_models(models)
        if problem:
            raise UsageError(problem)

    def _new_kid(self) -> str:
        while True:
            kid = keyformat.new_kid()
            if kid not in self._table.by_kid:
                return kid

    def _new_identity(
        self,
        name: str,
        digest: bytes,
        scopes: tuple[str, ...],
        models: tuple[str, ...],
        expires: float | None,
        limits: Limits,
        kid: str,
        imported: bool = False,
    ) -> Identity:
        now = self._clock()
        return Identity(
            kid=kid,
            name=name,
            scopes=tuple(dict.fromkeys(scopes)),
            models=tuple(dict.fromkeys(models)),
            created=now,
            expires=expires,
            imported=imported,
            limits=limits,
            verifiers=(Verifier.new(digest, now),),
        )

    async def create(
        self,
        name: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
        limits: Limits | None = None,
    ) -> Issued:
        async with self._persist.lock:
            self._check_new(name, scopes, models, expires, limits)
            kid = self._new_kid()
            key = keyformat.mint(kid)
            ident = self._new_identity(
                name, self._table.digest(key), scopes, models, expires, limits or Limits(), kid
            )
            await self._commit(ident)
            return Issued(ident, key)

    async def import_secret(
        self,
        name: str,
        secret: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        models: tuple[str, ...] = (),
        expires: float | None = None,
        limits: Limits | None = None,
    ) -> Identity:
        """Register an existing secret (a static key users migrate from) under ``name``."""
        async with self._persist.lock:
            self._check_new(name, scopes, models, expires, limits)
            if not (MIN_IMPORT_LEN <= len(secret) <= MAX_IMPORT_LEN):
                raise UsageError(
                    f"an imported secret must be {MIN_IMPORT_LEN} to {MAX_IMPORT_LEN} characters"
                )
            if not secret.isascii() or not secret.isprintable() or " " in secret:
                raise UsageError("an imported secret must be printable ASCII without spaces")
            # Any spelling of our prefixes: the gateway sends "tk_local_..." to token
            # verification, so such a secret would be registered yet refused as a Bearer.
            spelled = secret[: len(keyformat.PREFIX)].lower().replace("-", "_")
            if keyformat.looks_like_key(spelled) or tok.looks_like_token(spelled):
                raise UsageError(
                    "that looks like a localai-authd key or token; a key needs no import, "
                    "and a token cannot be a static secret"
                )
            digest = self._table.digest(secret)
            if digest in self._table.by_digest:
                raise Conflict("that secret is already registered to another key")
            ident = self._new_identity(
                name, digest, scopes, models, expires, limits or Limits(), self._new_kid(), True
            )
            await self._commit(ident)
            return ident

    async def rotate(self, name: str, grace: float = 0.0) -> Issued:
        """A new secret for ``name``; the current one stays valid for ``grace`` seconds."""
        if not (math.isfinite(grace) and 0 <= grace <= MAX_GRACE_SECONDS):
            raise UsageError(f"grace must be 0 to {MAX_GRACE_SECONDS:g} seconds")
        async with self._persist.lock:
            old = self._table.get(name)
            now = self._clock()
            # A suspended key may be rotated (suspend, rotate, hand out, resume: the way
            # out of a leak); a revoked or expired one may not.
            if old.status(now) not in (ACTIVE, SUSPENDED):
                raise Conflict(f"key {name!r} is {old.status(now)}; it cannot be rotated")
            key = keyformat.mint(old.kid)
            # Keep only the secret being replaced: a rotation inside a grace period ends the
            # older grace at once, so there are never more than two live secrets.
            current = [v for v in old.verifiers if v.not_after is None]
            kept = tuple(
                Verifier(v.digest, v.created, now + grace, v.vid) for v in current[-1:] if grace > 0
            )
            ident = old.with_(
                verifiers=(Verifier.new(self._table.digest(key), now), *kept),
                rotated_at=now,
                imported=False,
            )
            await self._commit(ident)
            return Issued(ident, key)

    async def revoke(self, name: str) -> Identity:
        async with self._persist.lock:
            old = self._table.get(name)
            if old.state == REVOKED:
                return old
            ident = old.with_(state=REVOKED, revoked_at=self._clock(), verifiers=())
            await self._commit(ident)
            return ident

    async def edit(
        self,
        name: str,
        scopes: tuple[str, ...] | None = None,
        models: tuple[str, ...] | None = None,
        expires: Any = UNSET,
        limits: dict[str, Any] | None = None,
    ) -> Identity:
        """Change scopes, models, expiry (None: never) and limits; the secret stays."""
        check_limits(limits or {})
        async with self._persist.lock:
            old = self._table.get(name)
            if old.state == REVOKED:
                raise Conflict(f"key {name!r} is revoked; a revoked key cannot be changed")
            new_scopes = old.scopes if scopes is None else tuple(dict.fromkeys(scopes))
            new_models = old.models if models is None else tuple(dict.fromkeys(models))
            self._check_grants(new_scopes, new_models)
            new_expires = old.expires if expires is UNSET else expires
            if expires is not UNSET:
                self._check_expiry(new_expires)
            ident = old.with_(
                scopes=new_scopes,
                models=new_models,
                expires=new_expires,
                limits=old.limits.merged(limits or {}),
            )
            await self._commit(ident)
            return ident

    async def set_suspended(self, name: str, suspended: bool) -> Identity:
        async with self._persist.lock:
            old = self._table.get(name)
            if old.state == REVOKED:
                raise Conflict(f"key {name!r} is revoked; it cannot be suspended or resumed")
            if old.suspended == suspended:
                return old
            ident = old.with_(suspended=suspended)
            await self._commit(ident)
            return ident

    async def delete(self, name: str) -> Identity:
        """Remove a revoked key's record; an active key must be revoked first."""
        async with self._persist.lock:
            old = self._table.get(name)
            if old.state != REVOKED:
                raise Conflict(
                    f"key {name!r} is not revoked: revoke it first (authctl revoke {name}), "
                    "then delete it"
                )
            table = dict(self._table.by_name)
            del table[name]
            await self._table.commit(table)
            return old

    async def bind_cert(self, name: str, subject: str) -> Identity:
        """Map a client-certificate name (CN or SAN, per listener) to key ``name``."""
        problem = check_cert_subject(subject)
        if problem:
            raise UsageError(problem)
        async with self._persist.lock:
            ident = self._table.get(name)
            other = self._table.by_subject.get(subject)
            if other is not None and other.name != name:
                raise Conflict(f"certificate subject {subject!r} is bound to key {other.name!r}")
            if subject in ident.cert_subjects:
                return ident
            new = ident.with_(cert_subjects=(*ident.cert_subjects, subject))
            await self._commit(new)
            return new

    async def unbind_cert(self, name: str, subject: str) -> Identity:
        async with self._persist.lock:
            ident = self._table.get(name)
            if subject not in ident.cert_subjects:
                raise NotFound(f"key {name!r} has no certificate subject {subject!r}")
            subjects = tuple(x for x in ident.cert_subjects if x != subject)
            new = ident.with_(cert_subjects=subjects)
            await self._commit(new)
            return new
