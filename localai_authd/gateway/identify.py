"""Who is asking: credentials + listener rules → an identity, or a 401/400.

Per listener: Bearer keys and tokens and x-api-key everywhere; HTTP Basic only on loopback
or over TLS (and only where enabled); client certificates where the listener asks for them,
mapped to a key by `authctl bind-cert`; and, at the highest setting, a certificate AND a
key of the same identity.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from ..config import Config, Listener
from ..keys import tokens as tok
from ..keys.model import Identity
from ..keys.store import KeyStore
from . import credentials
from .errors import MalformedCredentials, Refusal, challenge, unauthorized
from .tls import identity_name

Fail = Callable[..., Refusal]
# An auth-scheme token as registered schemes look (RFC 9110 §11.1), short, and no credential.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,19}")


class CredentialRefused(Refusal):
    """A refused credential, with the key id it presented (for the audit record)."""

    def __init__(self, base: Refusal, key_id: str | None) -> None:
        super().__init__(base.status, base.reason, base.message, base.outcome, base.headers)
        self.key_id = key_id


@dataclass(frozen=True)
class Principal:
    identity: Identity
    method: Literal["key", "token", "basic", "cert", "cert+key"]
    secret: str = ""  # the presented key or token (never logged): for token exchange
    token: bool = False


@functools.lru_cache(maxsize=256)
def _loopback_host(host: str) -> bool:
    # Cached: a listener has few local addresses, and parsing one per request showed in
    # the benchmark's profile.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_is_loopback(request: web.Request) -> bool:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname or not isinstance(sockname, tuple):
        return False
    return _loopback_host(str(sockname[0]))


def basic_allowed(request: web.Request, listener: Listener) -> bool:
    return listener.basic_auth and (listener.tls is not None or local_is_loopback(request))


def authenticate(
    request: web.Request, listener: Listener, cfg: Config, store: KeyStore
) -> Principal:
    basic_ok = basic_allowed(request, listener)

    def fail(
        reason: str, message: str, error: str | None = "invalid_token", kid: str | None = None
    ) -> Refusal:
        return CredentialRefused(unauthorized(reason, message, error, basic=basic_ok), kid)

    try:
        h = request.headers
        cred = credentials.extract_from(h.getall("Authorization", ()), h.getall("x-api-key", ()))
    except MalformedCredentials as e:
        e.headers = challenge("invalid_request", basic_ok)
        raise
    key_p = _from_credential(cred, request, listener, cfg, store, basic_ok, fail)
    cert_p = _from_certificate(request, listener, store, fail)
    tls = listener.tls
    if cert_p is not None and tls is not None and tls.require_key_with_cert and key_p is None:
        raise fail("key_required", "this listener needs a key as well as a certificate", None)
    if cert_p is not None and key_p is not None:
        if cert_p.identity.kid != key_p.identity.kid:
            raise fail(
                "cert_key_mismatch",
                "the client certificate and the key belong to different identities",
            )
        return Principal(key_p.identity, "cert+key", key_p.secret, key_p.token)
    if key_p is not None:
        return key_p
    if cert_p is not None:
        return cert_p
    raise fail(
        "no_credentials",
        "missing API key: send 'Authorization: Bearer <key>' (create one with "
        "'authctl create NAME')",
        None,
    )


def _from_credential(
    cred: credentials.Credential | None,
    request: web.Request,
    listener: Listener,
    cfg: Config,
    store: KeyStore,
    basic_ok: bool,
    fail: Fail,
) -> Principal | None:
    if cred is None:
        return None
    if cred.kind == "unsupported-scheme":
        # Named back only if it reads as a scheme: a bare key ("Authorization: sk_local_...")
        # would otherwise be echoed to whoever sent it, and to anything logging answers.
        named = f" {cred.scheme!r}" if _SCHEME.fullmatch(cred.scheme) else ""
        raise fail("unsupported_scheme", f"unsupported authorization scheme{named}: use Bearer")
    if cred.kind == "basic":
        if not basic_ok:
            why = (
                "HTTP Basic is turned off on this listener"
                if not listener.basic_auth
                else "HTTP Basic is only accepted on loopback or over TLS: use a Bearer key"
            )
            raise fail("basic_not_allowed", why)
        # The audit reason is precise (keys/verdict.py); the client's message is not.
        v = store.check_basic(cred.user, cred.secret)
        if v.identity is None:
            raise fail(v.reason, "invalid name or key in Basic credentials", kid=v.kid)
        return Principal(v.identity, "basic", cred.secret)
    if tok.looks_like_token(cred.secret):
        v = store.check_token(cred.secret, cfg.tokens.leeway, cfg.tokens.max_ttl)
        if v.identity is None:
            raise fail(v.reason, "invalid or expired token", kid=v.kid)
        return Principal(v.identity, "token", cred.secret, token=True)
    v = store.check(cred.secret)
    if v.identity is None:
        raise fail(v.reason, "invalid, expired or revoked API key", kid=v.kid)
    return Principal(v.identity, "key", cred.secret)


def _from_certificate(
    request: web.Request, listener: Listener, store: KeyStore, fail: object
) -> Principal | None:
    assert callable(fail)
    tls = listener.tls
    if tls is None or tls.client_cert == "off" or request.transport is None:
        return None
    # OpenSSL has verified it (CA, dates, CRL) during the handshake, or there is none.
    name = identity_name(request.transport.get_extra_info("peercert"), tls.client_identity)
    if name is None:
        return None
    v = store.check_cert(name)
    if v.identity is None:
        if v.kid is None:
            raise fail("cert_unbound", "the client certificate is not bound to any active key")
        raise fail(v.reason, "the client certificate's key may not be used now", kid=v.kid)
    return Principal(v.identity, "cert")
