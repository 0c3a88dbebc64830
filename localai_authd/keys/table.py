"""The key table: the identities, their in-memory indexes, and the two keyring entries
they live in (``pepper`` and ``keys``).

The whole table is one keyring entry, so a write is all-or-nothing: kill -9 leaves the old
table or the new one. :meth:`KeyTable.commit` writes first and swaps the indexes after, so
the request path only ever sees a table that is durable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable

from ..errors import KeyringUnavailable, NotFound
from .model import ACTIVE, Identity, check_name
from .persist import Persistence

TABLE_ENTRY = "keys"
PEPPER_ENTRY = "pepper"
TABLE_VERSION = 1

log = logging.getLogger("localai_authd.keys")


def _addressable(ident: Identity) -> Identity:
    """A stored key whose name the control plane would refuse (an older version accepted
    "name\\n") could never be shown, revoked or deleted: it is renamed to one that can be,
    and suspended until an operator looks at it."""
    if check_name(ident.name) is None:
        return ident
    new = f"invalid-name-{ident.kid}"
    if check_name(new) is not None:  # a kid that is not ours either
        new = f"invalid-name-{secrets.token_hex(6)}"
    log.warning(
        "key %r (kid %s) has a name the control plane refuses: suspended and renamed %r; "
        "check it with 'authctl show %s', then revoke or resume it",
        ident.name,
        ident.kid,
        new,
        new,
    )
    return ident.with_(name=new, suspended=True)


class KeyTable:
    def __init__(self, persist: Persistence, clock: Callable[[], float]) -> None:
        self._persist = persist
        self._clock = clock
        self.pepper = b""
        self.by_name: dict[str, Identity] = {}
        self.by_kid: dict[str, Identity] = {}
        self.by_digest: dict[bytes, Identity] = {}
        self.by_retired: dict[bytes, Identity] = {}
        self.by_subject: dict[str, Identity] = {}

    def load_blocking(self) -> tuple[bytes, dict[str, Identity]]:
        """Pepper and table from the keyring (the pepper created on first start)."""
        vault = self._persist.vault
        raw = vault.get(PEPPER_ENTRY)
        if raw is None:
            if vault.get(TABLE_ENTRY) is not None:
                # Keys without their pepper can never verify again: refuse, don't "repair".
                raise KeyringUnavailable(
                    "the keyring holds a key table but no pepper; refusing to start "
                    "(restore the keyring, or remove the key table to start over)"
                )
            vault.set(PEPPER_ENTRY, secrets.token_hex(32))
            raw = vault.get(PEPPER_ENTRY)
            if raw is None:
                raise KeyringUnavailable("the keyring did not keep the pepper it was given")
        pepper = bytes.fromhex(raw)
        blob = vault.get(TABLE_ENTRY)
        table: dict[str, Identity] = {}
        if blob is not None:
            try:
                doc = json.loads(blob)
                if doc.get("version") != TABLE_VERSION:
                    raise ValueError(f"unknown key table version {doc.get('version')!r}")
                for d in doc["keys"]:
                    ident = _addressable(Identity.from_json(d))
                    table[ident.name] = ident
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise KeyringUnavailable(f"the key table in the keyring is unreadable: {e}") from e
        return pepper, table

    def install(self, pepper: bytes, table: dict[str, Identity]) -> None:
        self.pepper = pepper
        self._index(table)

    def _index(self, table: dict[str, Identity]) -> None:
        self.by_name = dict(table)
        self.by_kid = {i.kid: i for i in table.values()}
        # Secrets not in our format (imported, possibly in a rotation grace) are found by
        # their keyed digest; ours by the key id they carry.
        self.by_digest = {v.digest: i for i in table.values() for v in i.verifiers}
        self.by_retired = {d: i for i in table.values() for d in i.retired}
        self.by_subject = {
            subj: i for i in table.values() if i.state == ACTIVE for subj in i.cert_subjects
        }

    async def commit(self, table: dict[str, Identity]) -> None:
        """Persist ``table``, then make it the live index. The caller holds the lock.

        Secrets that end here (past their grace, replaced, revoked) are remembered by
        digest in the identity's ``retired`` list, so a refusal can be named precisely.
        """
        now = self._clock()
        pruned: dict[str, Identity] = {}
        for n, i in table.items():
            prev = self.by_name.get(n)
            before = prev.verifiers if prev is not None and prev.kid == i.kid else ()
            live = tuple(v for v in i.verifiers if v.live(now))
            kept = {v.digest for v in live}
            ended = tuple(v for v in (*i.verifiers, *before) if v.digest not in kept)
            pruned[n] = i.with_(verifiers=live, retired=i.retire(ended)) if ended else i
        doc = {"version": TABLE_VERSION, "keys": [i.to_json() for i in pruned.values()]}
        await self._persist.write(TABLE_ENTRY, json.dumps(doc, sort_keys=True, allow_nan=False))
        self._index(pruned)

    @property
    def pepper(self) -> bytes:
        return self._pepper

    @pepper.setter
    def pepper(self, value: bytes) -> None:
        self._pepper = value
        # HMAC-SHA256 keyed with the pepper, copied per digest: the key schedule is done once
        # (a third of an HMAC's cost; the same bytes as hmac.new(pepper, secret, sha256)).
        self._mac = hmac.new(value, digestmod=hashlib.sha256)

    def digest(self, secret: str) -> bytes:
        mac = self._mac.copy()
        mac.update(secret.encode("utf-8", "surrogateescape"))
        return mac.digest()

    def get(self, name: str) -> Identity:
        ident = self.by_name.get(name)
        if ident is None:
            raise NotFound(f"no key named {name!r}")
        return ident
