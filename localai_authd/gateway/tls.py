"""TLS for listeners: server contexts (TLS 1.2+), client certificates, reload by replacement.

OpenSSL's certificate store only ever grows: loading a CA bundle or a CRL into a live context
adds to what it trusts and never removes (a CA taken out of ``client_ca``, or a CRL replaced
by one issued within the same second, would stay in force). So a reload never touches a
context in use: it builds a fresh one from the files and switches new handshakes to it.

The listening socket keeps the context it was started with (asyncio and uvloop hold on to
it), so that context trusts nothing and serves no certificate: its ``sni_callback`` runs on
every ClientHello, with or without SNI, and moves the handshake to ``ListenerTLS.current``.
Connections already open keep the context they were accepted with.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from ..config import TLS
from ..errors import ConfigError
from ..reload import Prepared

MODES = {"off": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _bare() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # No session resumption: a resumed session skips certificate verification, so a
    # ticket or cached session from before a reload would outlive a CA or CRL change.
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def server_context(tls: TLS, where: str) -> ssl.SSLContext:
    """A fresh context with the certificate, key, client CA and CRL of ``tls``; raises
    ConfigError naming the listener and the key if a file cannot be loaded."""
    ctx = _bare()
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
    ctx.verify_mode = MODES[tls.client_cert]
    return ctx


class ListenerTLS:
    """One TLS listener: the context its socket listens with, and the one in force."""

    def __init__(self, tls: TLS, where: str) -> None:
        self.where = where
        self.current = server_context(tls, where)
        self.since = int(time.time())  # when ``current`` came into force (whole seconds)
        self.listening = _bare()
        self.listening.sni_callback = self._switch
        self._copy_verify(self.current)

    def _switch(self, sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        # A TLS 1.2 session-ID resumption (the server's session cache cannot be turned off
        # from Python) skips verification: refuse one whose session was verified before the
        # context in force (session times are whole seconds: the same second is refused).
        if sslobj.session_reused:
            session = sslobj.session
            if session is None or session.time <= self.since:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        # Certificate, key and trust store come from the context switched to. The verify
        # mode and flags an SSL object copied from the listening context when it was made:
        # _copy_verify keeps those in step.
        sslobj.context = self.current
        return None

    def _copy_verify(self, ctx: ssl.SSLContext) -> None:
        self.listening.verify_mode = ctx.verify_mode
        self.listening.verify_flags = ctx.verify_flags

    def prepare(self, tls: TLS) -> Prepared:
        """Build the fresh context a reload switches to; raises ConfigError, changes
        nothing. Its commit (cannot fail) gives new handshakes that context."""
        ctx = server_context(tls, self.where)

        def commit() -> None:
            self._copy_verify(ctx)
            self.current = ctx
            self.since = int(time.time())

        return Prepared(commit)


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
