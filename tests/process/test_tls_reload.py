"""Reload through the real daemon: fresh TLS contexts (nothing stale stays trusted), streams on
open connections untouched, and a reload that fails changes nothing and says so."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.certs import Certs, make_certs
from tests.daemon_harness import Daemon, free_port
from tests.fakeupstream import FakeUpstream


@dataclass
class Setup:
    d: Daemon
    certs: Certs
    port: int  # the mTLS listener
    alice: tuple[Path, Path]  # from the CA that stays
    bob: tuple[Path, Path]  # from the other CA, the one a reload removes
    carol: tuple[Path, Path]  # from the CA that stays; a reload revokes her
    crl_time: datetime.datetime  # lastUpdate of every CRL written here: the same second

    @property
    def bundle(self) -> Path:
        return self.certs.path("clients-ca.pem")

    def trust(self, *, other_ca: bool) -> None:
        pems = [self.certs.ca.cert_pem.bytes()]
        if other_ca:
            pems.append(self.certs.other_ca.cert_pem.bytes())
        self.bundle.write_bytes(b"".join(pems))

    def write_crl(self, *revoke: Path, last_update: datetime.datetime) -> None:
        """A CRL from the CA revoking ``revoke`` (none: an unrelated serial)."""
        ca_cert = x509.load_pem_x509_certificate(self.certs.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.certs.ca.private_key_pem.bytes(), None)
        serials = [x509.load_pem_x509_certificate(p.read_bytes()).serial_number for p in revoke]
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(last_update)
            .next_update(last_update + datetime.timedelta(days=1))
        )
        for serial in serials or [4242]:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(last_update)
                .build()
            )
        crl = b.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        self.certs.path("clients.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def _config(s: Setup, plain: int, crl: bool, audit: Path) -> str:
    crl_line = f'client_crl = "{s.certs.path("clients.crl")}"' if crl else ""
    return f"""
[server]
listen = ["127.0.0.1:{plain}"]

[[listener]]
address = "127.0.0.1:{s.port}"
tls_cert = "{s.certs.path("server-chain.pem")}"
tls_key = "{s.certs.path("server.key")}"
client_ca = "{s.bundle}"
{crl_line}
client_cert = "required"

[audit]
file = "{audit}"
"""


async def _setup(tmp_path: Path, upstream: FakeUpstream, crl: bool) -> Setup:
    certs = make_certs(tmp_path / "tls")
    s = Setup(
        # No watchdog pings: they would fill the notify queue before the reload's lines.
        Daemon(upstream.url, tmp_path / "state", env={"WATCHDOG_USEC": "0"}, listen_flag=False),
        certs,
        free_port(),
        certs.client("alice", "alice.lan"),
        certs.client("bob", "bob.lan", ca=certs.other_ca),
        certs.client("carol", "carol.lan"),
        datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(minutes=5),
    )
    s.trust(other_ca=True)
    if crl:
        s.write_crl(last_update=s.crl_time)
    s.d.config_text = _config(s, s.d.port, crl, tmp_path / "state" / "audit.jsonl")
    await s.d.start()
    for name in ("alice", "bob", "carol"):
        await s.d.authctl("create", name)
        await s.d.authctl("bind-cert", name, f"{name}.lan")
    return s


@pytest.fixture
async def mtls(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Setup]:
    s = await _setup(tmp_path, upstream, crl=False)
    yield s
    try:
        await s.d.stop()
    finally:
        s.d.close()


@pytest.fixture
async def mtls_crl(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Setup]:
    s = await _setup(tmp_path, upstream, crl=True)
    yield s
    try:
        await s.d.stop()
    finally:
        s.d.close()


def _client_ctx(s: Setup, cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(s.certs.path("ca.pem")))
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


async def _get(s: Setup, cert: tuple[Path, Path]) -> int | str:
    """The status of GET /api/tags on a NEW connection with ``cert``, or how TLS refused."""
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(f"https://127.0.0.1:{s.port}/api/tags", ssl=_client_ctx(s, cert)) as r,
        ):
            await r.read()
            return r.status
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError) as e:
        return f"refused ({type(e).__name__})"


async def _reload(s: Setup) -> dict[str, object]:
    mark = len(s.d.messages)
    result: dict[str, object] = await s.d.authctl_json("reload")
    await s.d.wait_for("READY=1", 30, after=mark)
    return result


class _Resumer:
    """A blocking TLS client that keeps its session, to try resuming it later."""

    def __init__(self, s: Setup, cert: tuple[Path, Path], version: ssl.TLSVersion) -> None:
        self.s = s
        self.ctx = _client_ctx(s, cert)
        self.ctx.maximum_version = version
        self.session: ssl.SSLSession | None = None

    def get(self) -> str:
        raw = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        try:
            with self.ctx.wrap_socket(
                raw, server_hostname="127.0.0.1", session=self.session
            ) as tls:
                tls.sendall(b"GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = tls.recv(12)
                if not head:  # TLS 1.3: the server's verdict on our certificate came late
                    return "refused (closed)"
                if self.session is None:
                    self.session = tls.session
                reused = " (resumed)" if tls.session_reused else ""
                return head.decode(errors="replace") + reused
        except (ssl.SSLError, OSError) as e:
            return f"refused ({type(e).__name__})"


async def test_a_ca_removed_from_client_ca_is_no_longer_trusted_after_reload(
    mtls: Setup, upstream: FakeUpstream
) -> None:
    s = mtls
    assert await _get(s, s.bob) == 200 and await _get(s, s.alice) == 200
    resumers = [_Resumer(s, s.bob, v) for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)]
    for r in resumers:
        assert (await asyncio.to_thread(r.get)).startswith("HTTP/1.1 200")

    # A stream on a connection opened with bob's certificate, held by the upstream.
    upstream.hold_after = 1
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"https://127.0.0.1:{s.port}/api/generate",
            json={"model": "m"},
            ssl=_client_ctx(s, s.bob),
        ) as stream,
    ):
        assert stream.status == 200
        first = await asyncio.wait_for(stream.content.readany(), 60)

        s.trust(other_ca=False)
        result = await _reload(s)
        assert result["reloaded"] is True
        assert any("client_ca" in str(c) and "new content" in str(c) for c in result["changes"])  # type: ignore[attr-defined]

        assert str(await _get(s, s.bob)).startswith("refused")
        assert await _get(s, s.alice) == 200
        # Nor can a TLS session from before the reload be resumed to skip verification.
        for r in resumers:
            assert (await asyncio.to_thread(r.get)).startswith("refused")

        upstream.release.set()
        rest = await asyncio.wait_for(stream.read(), 60)  # the old connection went on
    assert first + rest == upstream.stream_bytes("ndjson", "m")


async def test_a_crl_replaced_within_the_same_second_applies(mtls_crl: Setup) -> None:
    s = mtls_crl
    assert await _get(s, s.carol) == 200
    # The same lastUpdate as the CRL in force: a store that kept both would go on
    # preferring the first one it loaded.
    s.write_crl(s.carol[0], last_update=s.crl_time)
    assert (await _reload(s))["reloaded"] is True
    assert str(await _get(s, s.carol)).startswith("refused")
    assert await _get(s, s.alice) == 200


async def test_a_reload_with_a_broken_key_changes_nothing_and_says_so(mtls: Setup) -> None:
    s = mtls
    serial = await asyncio.to_thread(_server_serial, s.port)
    s.trust(other_ca=False)  # would remove bob's CA ...
    shutil.copy(s.certs.path("ca.pem"), s.certs.path("server.key"))  # ... but this is no key
    mark = len(s.d.messages)
    code, _, err = await s.d.authctl("reload", check=False)
    assert code != 0 and "reload refused" in err and "tls_cert/tls_key" in err
    await s.d.wait_for("STATUS=", 30, after=mark)
    status = [m for m in s.d.messages[mark:] if m.startswith("STATUS=")][-1]
    assert "last reload refused, nothing changed" in status and "tls_cert/tls_key" in status
    await s.d.wait_log("reload refused, nothing changed", 30)
    assert await _get(s, s.bob) == 200  # the CA change did not apply either
    assert await asyncio.to_thread(_server_serial, s.port) == serial


async def test_a_reload_whose_audit_file_cannot_open_changes_nothing(
    mtls: Setup, tmp_path: Path
) -> None:
    s = mtls
    s.trust(other_ca=False)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit directory would be")
    assert s.d.config_text is not None
    s.d.config_path.write_text(
        s.d.config_text.replace(
            f'file = "{tmp_path / "state" / "audit.jsonl"}"', f'file = "{blocker / "audit.jsonl"}"'
        )
    )
    code, _, err = await s.d.authctl("reload", check=False)
    assert code != 0 and "[audit] file: cannot open" in err
    assert await _get(s, s.bob) == 200  # the TLS contexts were built, then dropped
    s.d.config_path.write_text(s.d.config_text)
    assert (await _reload(s))["reloaded"] is True
    assert str(await _get(s, s.bob)).startswith("refused")


def _server_serial(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
