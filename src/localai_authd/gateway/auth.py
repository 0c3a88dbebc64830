"""Credentials out of request headers. Pure: what the client presented, not whether it's good.

Returns None for "no credentials", a Credential for "something to verify", and raises
MalformedCredentials (400 invalid_request) for what cannot be read one way only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class MalformedCredentials(Exception):
    """400 invalid_request. The message never includes the presented value."""


@dataclass(frozen=True)
class Credential:
    kind: str  # "bearer" | "x-api-key" | "unsupported-scheme"
    secret: str = ""
    scheme: str = ""


def extract(headers: Iterable[tuple[str, str]]) -> Credential | None:
    auths: list[str] = []
    api_keys: list[str] = []
    for k, v in headers:
        lk = k.lower()
        if lk == "authorization":
            auths.append(v)
        elif lk == "x-api-key":
            api_keys.append(v)
    if len(auths) + len(api_keys) > 1:
        raise MalformedCredentials("send one credential: one Authorization or one x-api-key header")
    if api_keys:
        value = api_keys[0].strip()
        if not value or any(c.isspace() for c in value):
            raise MalformedCredentials("the x-api-key header must hold exactly one key")
        return Credential("x-api-key", value)
    if not auths:
        return None
    parts = auths[0].strip().split(" ")
    scheme = parts[0]
    if not scheme:
        raise MalformedCredentials("empty Authorization header")
    if scheme.lower() != "bearer":
        return Credential("unsupported-scheme", scheme=scheme if scheme.isascii() else "?")
    tokens = [p for p in parts[1:] if p]
    # RFC 6750 §2.1: "Bearer" 1*SP b64token. Exactly one token, no other whitespace.
    if len(tokens) != 1 or any(c.isspace() for c in tokens[0]):
        raise MalformedCredentials("expected 'Authorization: Bearer <key>'")
    return Credential("bearer", tokens[0])
