"""Time-limited tokens: mint and verify. Pure: secrets and the clock are passed in.

A token is ``tk_local_<skid><payload><sig>``:

- ``skid``: 8 hex characters, the id of the signing secret (so a rotated signing secret can
  stay valid through a grace period);
- ``payload``: unpadded base64url of a compact JSON object
  ``{"v":1,"k":kid,"g":vid,"i":issued,"e":expires[,"sc":[scopes]]}`` — the key id, the id of
  the key's secret it was issued under (a token dies when that secret is rotated out),
  times in whole seconds, and optionally scopes narrower than the key's;
- ``sig``: unpadded base64url (43 characters) of HMAC-SHA256(signing secret, everything
  before it).

Parsing is strict: canonical base64 only (no padding, no alternative encodings of the same
bytes), exactly the known fields with the right types. Verification computes one HMAC whether
or not the signing-secret id is known, and compares in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "tk_local_"
SKID_LEN = 8
SIG_LEN = 43
MAX_LEN = 2048
_SKID = re.compile(r"[0-9a-f]{8}")  # fullmatch only: "$" allows a final newline
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_DUMMY = secrets.token_bytes(32)


@dataclass(frozen=True)
class SigningSecret:
    id: str
    secret: bytes
    created: float
    not_after: float | None = None

    def live(self, now: float) -> bool:
        return self.not_after is None or now < self.not_after

    @classmethod
    def new(cls, now: float) -> SigningSecret:
        return cls(secrets.token_hex(4), secrets.token_bytes(32), now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "secret": self.secret.hex(),
            "created": self.created,
            "not_after": self.not_after,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SigningSecret:
        return cls(d["id"], bytes.fromhex(d["secret"]), float(d["created"]), d.get("not_after"))


@dataclass(frozen=True)
class Claims:
    kid: str
    vid: str
    issued: int
    expires: int
    scopes: tuple[str, ...] | None  # None: the key's own scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None  # canonical only: no re-padded variants


def _sign(secret: bytes, head: str) -> bytes:
    return hmac.digest(secret, head.encode("ascii"), hashlib.sha256)


def mint(signing: SigningSecret, claims: Claims) -> str:
    doc: dict[str, Any] = {
        "v": 1,
        "k": claims.kid,
        "g": claims.vid,
        "i": claims.issued,
        "e": claims.expires,
    }
    if claims.scopes is not None:
        doc["sc"] = list(claims.scopes)
    payload = _b64(json.dumps(doc, separators=(",", ":")).encode())
    head = f"{PREFIX}{signing.id}{payload}"
    return head + _b64(_sign(signing.secret, head))


TokenRefusal = Literal["ok", "invalid_token", "expired", "signing_secret_retired"]


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX)


def _claims(raw: bytes) -> Claims | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        return None
    if not set(doc) <= {"v", "k", "g", "i", "e", "sc"} or not {"k", "g", "i", "e"} <= set(doc):
        return None
    k, g, i, e, sc = doc["k"], doc["g"], doc["i"], doc["e"], doc.get("sc")
    if not (isinstance(k, str) and isinstance(g, str)):
        return None
    if type(i) is not int or type(e) is not int:
        return None
    if sc is not None and not (isinstance(sc, list) and all(isinstance(x, str) for x in sc)):
        return None
    return Claims(k, g, i, e, tuple(sc) if sc is not None else None)


def verify(
    token: str,
    signing: Mapping[str, SigningSecret],
    now: float,
    leeway: float,
    max_ttl: float,
) -> Claims | None:
    """The token's claims if it is well-formed, signed by a live secret and in date."""
    return check(token, signing, now, leeway, max_ttl)[0]


def check(
    token: str,
    signing: Mapping[str, SigningSecret],
    now: float,
    leeway: float,
    max_ttl: float,
) -> tuple[Claims | None, TokenRefusal, str | None]:
    """(claims, "ok", kid), or (None, why, kid): the key id is given only once the signature
    holds, so an audit record never names a key on the word of an unsigned payload."""
    if len(token) > MAX_LEN or not token.isascii() or not token.startswith(PREFIX):
        return None, "invalid_token", None
    body = token[len(PREFIX) :]
    if len(body) <= SKID_LEN + SIG_LEN:
        return None, "invalid_token", None
    skid, payload_b64, sig_b64 = body[:SKID_LEN], body[SKID_LEN:-SIG_LEN], body[-SIG_LEN:]
    sig = _unb64(sig_b64)
    known = signing.get(skid) if _SKID.fullmatch(skid) else None
    expected = _sign(known.secret if known else _DUMMY, token[:-SIG_LEN])
    good = hmac.compare_digest(expected, sig if sig is not None and len(sig) == 32 else b"\0" * 32)
    if not good or known is None:
        return None, "invalid_token", None
    raw = _unb64(payload_b64)
    claims = _claims(raw) if raw is not None else None
    if claims is None:
        return None, "invalid_token", None
    if not known.live(now):
        return None, "signing_secret_retired", claims.kid
    if claims.expires + leeway <= now:
        return None, "expired", claims.kid
    if claims.expires - now > max_ttl + leeway or claims.issued > now + leeway:
        return None, "invalid_token", claims.kid  # from the future, or longer than we issue
    return claims, "ok", claims.kid
