"""Why a credential was refused, as the audit trail and metrics name it.

A refused credential carries the key id it presented whenever it carries one (ours do; an
imported secret is named by the identity its digest belonged to, if any).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from .model import Identity

Reason = Literal[
    "ok",
    "unknown_key",
    "wrong_secret",
    "secret_retired",
    "revoked",
    "expired",
    "suspended",
    "invalid_token",
    "signing_secret_retired",
]


class Verdict(NamedTuple):
    """A tuple, not a dataclass: one is built on every request, and a frozen dataclass
    costs twice as much to build (bench/)."""

    identity: Identity | None  # None: refused
    reason: Reason
    kid: str | None = None


def refused_for(ident: Identity, now: float) -> Reason | None:
    """Why ``ident`` may not be used at ``now``, or None if it may."""
    status = ident.status(now)
    if status == "revoked":
        return "revoked"
    if status == "suspended":
        return "suspended"
    if status == "expired":
        return "expired"
    return None
