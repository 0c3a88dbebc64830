"""What an identity ("a key") is. Pure data; JSON in and out for the key table.

Loading is forgiving in one direction only: a stored value that is not what it should be
(a time that is NaN or Infinity, a limit that is not a whole number) never crashes the
readers of the table (the gateway, ``authctl list``); it is replaced by the value that
refuses the most (an expiry in the past, a secret that has ended).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..redact import looks_like_credential
from .globs import check_glob

# Scopes are names; a route needs one (see gateway/routes.py). Adding a scope means adding it
# here and naming it on the routes that need it.
SCOPES: dict[str, str] = {
    "inference": "generate, chat, embed, list and show models",
    "admin": "model administration: pull, push, create, copy, delete, blobs",
}
DEFAULT_SCOPES = ("inference",)

# fullmatch everywhere: "$" would also match before a final newline.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CERT_SUBJECT_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
ACTIVE = "active"
REVOKED = "revoked"
SUSPENDED = "suspended"
EXPIRED = "expired"
# How many ended secrets of a key are remembered (as their keyed digests) so that a refusal
# can say "secret_retired" or "revoked" rather than "wrong_secret".
RETIRED_KEPT = 4
MAX_LIMIT = 10**12  # a bound, not a policy: anything larger is a typo or an attack
MAX_KEEP_ALIVE = 366 * 86400.0
MAX_GRACE_SECONDS = 366 * 86400.0  # a rotation's grace (key or signing secret): a bound


def check_name(name: str) -> str | None:
    """A problem with ``name`` as a key name, or None."""
    if isinstance(name, str) and looks_like_credential(name):
        # A name is shown, answered and audited everywhere: never repeat this one.
        return "invalid key name: it looks like a key or token, and names are not secret"
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return (
            f"invalid key name {name!r}: use 1-64 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return None


def check_scopes(scopes: list[str] | tuple[str, ...]) -> str | None:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        return f"unknown scope {unknown[0]!r}: known scopes are {', '.join(SCOPES)}"
    if not scopes:
        return "a key needs at least one scope"
    return None


def check_cert_subject(subject: str) -> str | None:
    if not isinstance(subject, str) or not CERT_SUBJECT_RE.fullmatch(subject):
        return (
            f"invalid certificate subject {subject!r}: 1-255 printable ASCII characters, "
            "not starting or ending with a space"
        )
    return None


def check_models(models: list[str] | tuple[str, ...]) -> str | None:
    for m in models:
        problem = check_glob(m)
        if problem:
            return problem
    return None


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    concurrent_streams: int | None = None
    max_keep_alive: float | None = None  # seconds; -1 is never allowed as a cap
    max_num_ctx: int | None = None
    # None = the config default applies.

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: dict[str, Any]) -> Limits:
        return replace(self, **changes)

    @classmethod
    def from_json(cls, d: object) -> Limits:
        """Forgiving: a value that is not a sane limit becomes None (the config default)."""
        if not isinstance(d, dict):
            return cls()
        out: dict[str, Any] = {}
        for f in fields(cls):
            value = d.get(f.name)
            out[f.name] = value if limit_problem(f.name, value) is None else None
        return cls(**out)


LIMIT_FIELDS = tuple(f.name for f in fields(Limits))


def limit_problem(name: str, value: object) -> str | None:
    """A problem with ``value`` for limit ``name``, or None (None itself is fine)."""
    if value is None:
        return None
    if name == "max_keep_alive":
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= MAX_KEEP_ALIVE
        )
        return None if ok else f"{name} must be 0 to {MAX_KEEP_ALIVE:g} seconds"
    ok = type(value) is int and 0 <= value <= MAX_LIMIT
    return None if ok else f"{name} must be a whole number from 0 to {MAX_LIMIT}"


def _strings(value: object) -> tuple[str, ...] | None:
    """A stored list of strings, or None if it is anything else."""
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return tuple(value)
    return None


def _time(value: object, fallback: float | None) -> float | None:
    """A stored time as a finite float; anything else becomes ``fallback``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return fallback


@dataclass(frozen=True)
class Verifier:
    """HMAC-SHA256(pepper, secret) of one secret; ``not_after`` is set once it was rotated out."""

    digest: bytes
    created: float
    not_after: float | None = None
    # A public id for this secret: tokens name the secret they were issued under, so they
    # die with it (rotation past grace) without carrying anything derived from it.
    vid: str = ""

    def live(self, now: float) -> bool:
        return self.not_after is None or now < self.not_after

    @classmethod
    def new(cls, digest: bytes, now: float) -> Verifier:
        return cls(digest, now, None, secrets.token_hex(4))

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest.hex(),
            "created": self.created,
            "not_after": self.not_after,
            "vid": self.vid,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verifier:
        return cls(
            bytes.fromhex(d["digest"]),
            _time(d.get("created"), 0.0) or 0.0,
            _time(d.get("not_after"), 0.0),  # an unreadable end: ended
            d.get("vid") or secrets.token_hex(4),
        )


@dataclass(frozen=True)
class Identity:
    kid: str
    name: str
    scopes: tuple[str, ...]
    created: float
    models: tuple[str, ...] = ()  # globs on the request's model; empty: any model
    expires: float | None = None
    state: str = ACTIVE
    revoked_at: float | None = None
    rotated_at: float | None = None
    imported: bool = False  # the secret came from `authctl import`, not our format
    cert_subjects: tuple[str, ...] = ()  # client-certificate names (CN or SAN) bound to it
    limits: Limits = Limits()
    suspended: bool = False
    verifiers: tuple[Verifier, ...] = field(default=(), repr=False)
    # Keyed digests of the key's last ended secrets: only to name a refusal precisely.
    retired: tuple[bytes, ...] = field(default=(), repr=False)

    def usable(self, now: float) -> bool:
        return (
            self.state == ACTIVE
            and not self.suspended
            and (self.expires is None or now < self.expires)
        )

    def status(self, now: float) -> str:
        if self.state != ACTIVE:
            return self.state
        if self.suspended:
            return SUSPENDED
        if self.expires is not None and not now < self.expires:
            return EXPIRED
        return ACTIVE

    def with_(self, **changes: Any) -> Identity:
        return replace(self, **changes)

    def retire(self, ended: tuple[Verifier, ...]) -> tuple[bytes, ...]:
        """``retired`` with the digests of ``ended`` added (newest kept)."""
        digests = tuple(v.digest for v in ended if v.digest not in self.retired)
        return (*digests, *self.retired)[:RETIRED_KEPT]

    def public(self, now: float) -> dict[str, Any]:
        """What the control plane shows: everything but the verifiers."""
        grace = [v.not_after for v in self.verifiers if v.not_after is not None and v.live(now)]
        return {
            "name": self.name,
            "kid": self.kid,
            "scopes": list(self.scopes),
            "models": list(self.models),
            "created": self.created,
            "expires": self.expires,
            "state": self.status(now),
            "suspended": self.suspended,
            "revoked_at": self.revoked_at,
            "rotated_at": self.rotated_at,
            "imported": self.imported,
            "cert_subjects": list(self.cert_subjects),
            "limits": self.limits.to_json(),
            "previous_secret_valid_until": max(grace) if grace else None,
        }

    def to_json(self) -> dict[str, Any]:
        d = self.public(0.0)
        d["state"] = self.state
        del d["previous_secret_valid_until"]
        d["verifiers"] = [v.to_json() for v in self.verifiers]
        d["retired"] = [x.hex() for x in self.retired]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Identity:
        state = d.get("state", ACTIVE)
        kid, name = d["kid"], d["name"]
        if not (isinstance(kid, str) and isinstance(name, str)):
            raise ValueError("a key's kid and name must be strings")
        models = _strings(d.get("models", []))
        return cls(
            kid=kid,
            name=name,
            # Unknown scopes are dropped (narrower is safe); unreadable models are not: an
            # empty list means "any model", so the key is suspended instead.
            scopes=tuple(x for x in _strings(d.get("scopes")) or () if x in SCOPES),
            models=models or (),
            created=_time(d.get("created"), 0.0) or 0.0,
            expires=_time(d.get("expires"), 0.0),  # an unreadable expiry: expired
            state=state if state in (ACTIVE, REVOKED) else REVOKED,
            revoked_at=_time(d.get("revoked_at"), None),
            rotated_at=_time(d.get("rotated_at"), None),
            imported=bool(d.get("imported", False)),
            cert_subjects=_strings(d.get("cert_subjects", [])) or (),
            limits=Limits.from_json(d.get("limits")),
            # anything but false (or unreadable models): suspended
            suspended=d.get("suspended", False) is not False or models is None,
            verifiers=tuple(Verifier.from_json(v) for v in d.get("verifiers", ())),
            retired=tuple(bytes.fromhex(x) for x in d.get("retired", ()))[:RETIRED_KEPT],
        )
