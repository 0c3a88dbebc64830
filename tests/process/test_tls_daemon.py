"""TLS through the real daemon: README's curl lines, and certificates reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from tests.certs import Certs, make_certs
from tests.conftest import requires
from tests.daemon_harness import AUTHCTL, PATIENCE, Daemon, free_port
from tests.fakeupstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]


def _config(certs: Certs, tls_port: int, mtls_port: int) -> str:
    return f"""
[server]
listen = ["127.0.0.1:{{plain}}"]

[[listener]]
address = "127.0.0.1:{tls_port}"
tls_cert = "{certs.path("server-chain.pem")}"
tls_key = "{certs.path("server.key")}"

[[listener]]
address = "127.0.0.1:{mtls_port}"
tls_cert = "{certs.path("server-chain.pem")}"
tls_key = "{certs.path("server.key")}"
client_ca = "{certs.path("ca.pem")}"
client_cert = "required"
require_key_with_cert = true
"""


@pytest.fixture
async def tls_daemon(
    tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[tuple[Daemon, Certs, int, int]]:
    certs = make_certs(tmp_path / "tls", ("ai.example.lan", "localhost", "127.0.0.1"))
    certs.client("client", "laptop.example.lan")
    tls_port, mtls_port = free_port(), free_port()
    d = Daemon(upstream.url, tmp_path / "state", listen_flag=False)
    d.config_text = _config(certs, tls_port, mtls_port).replace("{plain}", str(d.port))
    await d.start()
    yield d, certs, tls_port, mtls_port
    try:
        await d.stop()
    finally:
        d.close()


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Choose your method") : text.index("## How requests are answered")]


async def _sh(cmd: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    p = await asyncio.create_subprocess_shell(
        cmd,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(p.communicate(), 30)
    assert p.returncode is not None
    return p.returncode, out.decode()


@requires("curl")
async def test_readme_curl_lines_work(tls_daemon: tuple[Daemon, Certs, int, int]) -> None:
    d, certs, tls_port, mtls_port = tls_daemon
    key = (await d.authctl_json("create", "laptop"))["key"]
    env = {
        "KEY": key,
        "LOCALAI_AUTHD_SOCKET": str(d.control),
        "PATH": f"{Path(AUTHCTL).parent}:{os.environ['PATH']}",
    }
    lines = [
        ln.strip()
        for ln in _readme_section().splitlines()
        if ln.strip().startswith(("curl ", "authctl "))
    ]
    assert len(lines) >= 8
    ran = 0
    for line in lines:
        cmd = (
            line.replace("http://127.0.0.1:11435", f"http://127.0.0.1:{d.port}")
            .replace("ai.example.lan:11443", f"ai.example.lan:{tls_port}")
            .replace("ai.example.lan:11444", f"ai.example.lan:{mtls_port}")
        )
        if cmd.startswith("curl "):
            # The README's host name, resolved to loopback here; -f: fail on HTTP errors.
            cmd = (
                f"curl -sSf --resolve ai.example.lan:{tls_port}:127.0.0.1 --resolve "
                f"ai.example.lan:{mtls_port}:127.0.0.1 "
            ) + cmd[5:]
        if "$TOKEN" in cmd:
            code, out = await _sh(
                f'curl -sSf -H "Authorization: Bearer $KEY" -d "{{}}" '
                f"http://127.0.0.1:{d.port}/localai-authd/token",
                certs.dir,
                env,
            )
            env["TOKEN"] = json.loads(out)["token"]
        code, out = await _sh(cmd, certs.dir, env)
        assert code == 0, (line, out, re.findall(r"serving on [^;]*", d.stderr()))
        ran += 1
    assert ran == len(lines)


def _server_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


async def test_sighup_reloads_certificates_without_dropping_streams(
    tls_daemon: tuple[Daemon, Certs, int, int], upstream: FakeUpstream
) -> None:
    d, certs, tls_port, _ = tls_daemon
    key = (await d.authctl_json("create", "k"))["key"]
    before = await asyncio.to_thread(_server_serial, tls_port)
    ctx = ssl.create_default_context(cafile=str(certs.path("ca.pem")))
    upstream.hold_after = 1
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"https://127.0.0.1:{tls_port}/api/generate",
            json={"model": "m"},
            ssl=ctx,
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        first = await asyncio.wait_for(r.content.readany(), PATIENCE)
        # A new certificate from the same CA, in place of the old files.
        new = certs.ca.issue_cert("ai.example.lan", "localhost", "127.0.0.1")
        new.private_key_pem.write_to_path(str(certs.path("server.key")))
        certs.path("server-chain.pem").write_bytes(b"".join(p.bytes() for p in new.cert_chain_pems))
        mark = len(d.messages)
        d.send(signal.SIGHUP)
        await d.wait_for("READY=1", 5, after=mark)
        after = await asyncio.to_thread(_server_serial, tls_port)
        assert after != before
        assert after == x509.load_pem_x509_certificate(new.cert_chain_pems[0].bytes()).serial_number
        upstream.release.set()
        rest = await asyncio.wait_for(r.read(), PATIENCE)  # the stream in flight went on
    assert first + rest == upstream.stream_bytes("ndjson", "m")


async def test_a_broken_certificate_on_reload_is_refused(
    tls_daemon: tuple[Daemon, Certs, int, int],
) -> None:
    d, certs, tls_port, _ = tls_daemon
    before = await asyncio.to_thread(_server_serial, tls_port)
    shutil.copy(certs.path("ca.pem"), certs.path("server.key"))  # not a key
    code, _, err = await d.authctl("reload", check=False)
    assert code != 0 and "tls_cert/tls_key" in err
    assert await asyncio.to_thread(_server_serial, tls_port) == before  # still serving


async def test_non_loopback_without_tls_refuses_to_start(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    d = Daemon(upstream.url, tmp_path / "state", listen_flag=False)
    d.config_text = '[[listener]]\naddress = "0.0.0.0:11499"\n'
    try:
        await d.start(wait=False)
        assert d.proc is not None
        assert await asyncio.wait_for(d.proc.wait(), 30) == 78
        err = d.stderr()
        assert re.search(r"0\.0\.0\.0:11499 is not loopback and has no TLS", err)
        assert "add tls_cert and tls_key" in err
    finally:
        d.close()
