"""What an identity ("a key") is. Pure data; JSON in and out for the key table."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

# Scopes are names; a route needs one (see gateway/routes.py). Adding a scope means adding it
# here and naming it on the routes that need it.
SCOPES: dict[str, str] = {
    "inference": "generate, chat, embed, list and show models",
    "admin": "model administration: pull, push, create, copy, delete, blobs",
}
DEFAULT_SCOPES = ("inference",)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_GLOB_RE = re.compile(r"^[A-Za-z0-9._:/*?\[\]@+-]{1,200}$")
ACTIVE = "active"
REVOKED = "revoked"


def check_name(name: str) -> str | None:
    """A problem with ``name`` as a key name, or None."""
    if not NAME_RE.match(name):
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


CERT_SUBJECT_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")


def check_cert_subject(subject: str) -> str | None:
    if not CERT_SUBJECT_RE.match(subject) or subject != subject.strip():
        return f"invalid certificate subject {subject!r}: 1-255 printable ASCII characters"
    return None


def check_models(models: list[str] | tuple[str, ...]) -> str | None:
    for m in models:
        if not MODEL_GLOB_RE.match(m):
            return f"invalid model pattern {m!r}"
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
            float(d["created"]),
            d.get("not_after"),
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

    def usable(self, now: float) -> bool:
        return self.state == ACTIVE and (self.expires is None or now < self.expires)

    def status(self, now: float) -> str:
        if self.state != ACTIVE:
            return self.state
        if self.expires is not None and now >= self.expires:
            return "expired"
        return ACTIVE

    def with_(self, **changes: Any) -> Identity:
        return replace(self, **changes)

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
            "revoked_at": self.revoked_at,
            "rotated_at": self.rotated_at,
            "imported": self.imported,
            "cert_subjects": list(self.cert_subjects),
            "previous_secret_valid_until": max(grace) if grace else None,
        }

    def to_json(self) -> dict[str, Any]:
        d = self.public(0.0)
        d["state"] = self.state
        del d["previous_secret_valid_until"]
        d["verifiers"] = [v.to_json() for v in self.verifiers]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Identity:
        return cls(
            kid=d["kid"],
            name=d["name"],
            scopes=tuple(d["scopes"]),
            models=tuple(d.get("models", ())),
            created=float(d["created"]),
            expires=d.get("expires"),
            state=d.get("state", ACTIVE),
            revoked_at=d.get("revoked_at"),
            rotated_at=d.get("rotated_at"),
            imported=bool(d.get("imported", False)),
            cert_subjects=tuple(d.get("cert_subjects", ())),
            verifiers=tuple(Verifier.from_json(v) for v in d.get("verifiers", ())),
        )
