"""Beyond loopback, for real: a network namespace of our own with a non-loopback address.

Every packet stays inside the namespace (10.77.0.1 exists only there). Needs root and
iproute2; the daemon, the fake upstream and curl all run inside it.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import make_certs
from tests.conftest import skip_unless
from tests.daemon_harness import VENV_BIN, Daemon, free_port

ADDR = "10.77.0.1"
pytestmark = pytest.mark.root


@pytest.fixture
def netns() -> Iterator[str]:
    # root: only root may create a network namespace.
    skip_unless("ip", apt="iproute2", root=True)
    name = f"lad{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{ADDR}/32", "dev", "lo"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


async def _in_ns(ns: str, *cmd: str) -> tuple[int, str]:
    p = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        ns,
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(p.communicate(), 30)
    assert p.returncode is not None
    return p.returncode, out.decode()


async def test_beyond_loopback_only_with_tls_and_basic_over_tls(netns: str, tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "tls", (ADDR,))
    up_port, tls_port, plain_port = free_port(), free_port(), free_port()
    upstream = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        netns,
        sys.executable,
        "-m",
        "tests.fakeupstream",
        "--port",
        str(up_port),
        "--interval",
        "0",
        cwd=Path(__file__).resolve().parents[2],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    d = Daemon(
        f"http://127.0.0.1:{up_port}",
        tmp_path / "state",
        listen_flag=False,
        prefix=["ip", "netns", "exec", netns],
    )
    try:
        # 1. A plain listener on the namespace's real address: refused, with the fix.
        d.config_text = f'[[listener]]\naddress = "{ADDR}:{plain_port}"\n'
        code, out = await _in_ns(
            netns,
            str(VENV_BIN / "localai-authd"),
            "--config",
            str(_write(d, d.config_text)),
            "--check-config",
        )
        assert code == 78 and "is not loopback and has no TLS" in out
        # 2. TLS there: Bearer and Basic work over TLS, from inside the namespace.
        d.config_text = (
            f'[server]\nlisten = ["127.0.0.1:{plain_port}"]\n'
            f'[[listener]]\naddress = "{ADDR}:{tls_port}"\n'
            f'tls_cert = "{certs.path("server-chain.pem")}"\n'
            f'tls_key = "{certs.path("server.key")}"\n'
        )
        await d.start()
        key = (await d.authctl_json("create", "laptop"))["key"]
        url = f"https://{ADDR}:{tls_port}/api/tags"
        cacert = ["--cacert", str(certs.path("ca.pem"))]
        for auth in (["-H", f"Authorization: Bearer {key}"], ["-u", f"laptop:{key}"]):
            assert await _http_code(netns, *cacert, *auth, url) == "200"
        plain = f"http://127.0.0.1:{plain_port}/api/tags"
        assert await _http_code(netns, "-u", f"laptop:{key}", plain) == "200"  # loopback
        code, out = await _in_ns(netns, "curl", "-sS", "--cacert", str(certs.path("ca.pem")), url)
        assert code == 0 and "missing API key" in out
        log = await d.wait_log('"auth":"basic"')
        assert f'"client":"{ADDR}"' in log and key not in log
    finally:
        await d.stop()
        d.close()
        upstream.kill()
        await upstream.wait()


async def _http_code(ns: str, *args: str) -> str:
    code, out = await _in_ns(ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args)
    assert code == 0, out
    return out


def _write(d: Daemon, text: str) -> Path:
    d.state_dir.mkdir(parents=True, exist_ok=True)
    d.config_path.write_text(text)
    return d.config_path
