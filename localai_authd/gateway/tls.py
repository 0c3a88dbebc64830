"""TLS for listeners: server contexts (TLS 1.2+), client certificates, reload in place.

A context is built once per listener and reloaded *in place* on SIGHUP: new handshakes use
the new certificate (and CRL), connections already open keep theirs, nothing is dropped.
"""

from __future__ import annotations

import ssl
from typing import Any

from ..config import TLS
from ..errors import ConfigError

MODES = {"off": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(tls: TLS, where: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    reload(ctx, tls, where)
    ctx.verify_mode = MODES[tls.client_cert]
    return ctx


def reload(ctx: ssl.SSLContext, tls: TLS, where: str) -> None:
    """(Re)load certificate, key, client CA and CRL into ``ctx``; raise ConfigError if bad."""
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError([f"{where}: cannot load tls_cert/tls_key: {_why(e)}"]) from None
    if tls.client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError([f"{where}: cannot load client_ca: {_why(e)}"]) from None
    if tls.client_crl is not None:
        try:
            ctx.load_verify_locations(cafile=tls.client_crl)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError([f"{where}: cannot load client_crl: {_why(e)}"]) from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _why(e: BaseException) -> str:
    return getattr(e, "strerror", None) or getattr(e, "reason", None) or type(e).__name__


def identity_name(peercert: dict[str, Any] | None, mode: str) -> str | None:
    """The name a verified client certificate gives itself: its CN, or its first SAN."""
    if not peercert:
        return None
    if mode == "cn":
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI"):
            return str(value)
    return None
