"""Shared real parts: the fake upstream, a key store on the real file keyring, a gateway.

No mocks here: the upstream is a real aiohttp server on loopback, the keyring is the
project's real encrypted backend in a temp dir, the gateway listens on a real socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import pytest
from aiohttp import web

from localai_authd import config
from localai_authd.audit import Audit
from localai_authd.gateway.app import Gateway
from localai_authd.gateway.runner import GatewayRunner
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from localai_authd.streams import StreamRegistry
from tests.fakeupstream import FakeUpstream

# Property tests judge answers, not speed: hypothesis's default 200 ms deadline per example
# fails them on a busy machine (DeadlineExceeded, then Flaky). Every @settings inherits this.
hypothesis.settings.register_profile(
    "localai-authd",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("localai-authd")

# The unit runs the daemon with LimitNOFILE=65536 and the connection caps are derived from the
# open-file limit; a login shell's soft limit is often 1024. Raise the soft limit as far as the
# hard one allows, for this process and the daemons it starts, so that no outcome depends on
# the shell the suite was started from.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 65536 if _hard == resource.RLIM_INFINITY else min(65536, _hard)
if _soft != resource.RLIM_INFINITY and _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))

# A suite started in the background by a non-interactive shell (CI, nohup, `cmd &` in a script)
# inherits SIGINT ignored, and so would every process it starts: Ctrl-C tests (authctl audit
# --follow, the daemon's second stop signal) would then wait forever. Give SIGINT back its
# usual meaning here; a child's disposition after exec is then the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Variables a service manager sets for the process it runs. Tests that want them (the daemon
# harness's notify socket) set their own; inherited ones (a suite run under systemd, in a
# container) would make the code under test talk to the runner's manager instead.
SERVICE_MANAGER_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


@pytest.fixture(autouse=True)
def _no_service_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SERVICE_MANAGER_ENV:
        monkeypatch.delenv(var, raising=False)


# ---- what a test needs from the machine --------------------------------------------------------

NO_SKIP_ENV = "LOCALAI_AUTHD_NO_SKIP"


def missing(*programs: str, apt: str = "", root: bool = False) -> str | None:
    """Why this machine cannot run a test, in words that say what to install; None if it can.

    ``programs`` are looked up on PATH; ``apt`` names the Debian packages that provide them
    (defaults to the program names); ``root`` asks for uid 0.
    """
    reasons: list[str] = []
    if root and os.geteuid() != 0:
        reasons.append("needs root (run the tests as root)")
    absent = [p for p in programs if shutil.which(p) is None]
    if absent:
        reasons.append(f"needs {', '.join(absent)}: apt-get install -y {apt or ' '.join(absent)}")
    return "; ".join(reasons) or None


def requires(*programs: str, apt: str = "", root: bool = False) -> pytest.MarkDecorator:
    """Skip unless the machine has ``programs`` (and root, if asked), saying what to install.

    The one way for a test to depend on the machine, so that `make test` passes on a plain
    Debian 12 with only python3-venv, and `.ci/run` (which installs everything and sets
    LOCALAI_AUTHD_NO_SKIP=1) fails instead of skipping. Use it as a decorator, in
    ``pytestmark``, or in ``pytest.param(..., marks=requires(...))``::

        @requires("gnome-keyring-daemon", "dbus-daemon", apt="gnome-keyring dbus")
        @requires("ip", apt="iproute2", root=True)

    In a fixture, where a mark cannot go, call ``skip_unless(...)`` with the same arguments.
    """
    reason = missing(*programs, apt=apt, root=root)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def skip_unless(*programs: str, apt: str = "", root: bool = False) -> None:
    """``requires`` for use inside a fixture or a test body."""
    reason = missing(*programs, apt=apt, root=root)
    if reason is not None:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With LOCALAI_AUTHD_NO_SKIP=1 (CI), a skip is a failure: no coverage vanishes quietly.

    xfail stays what it is: it is an expectation written in the test, not a missing tool.
    """
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get(NO_SKIP_ENV) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but {NO_SKIP_ENV}=1 forbids skips: {reason}"
    return report


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    await up.start()
    yield up
    up.release.set()
    await up.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[KeyStore]:
    vault = open_vault("file", tmp_path / "state")
    s = KeyStore(vault)
    await s.load()
    yield s
    await s.close()


@dataclass
class GW:
    url: str
    port: int
    store: KeyStore
    gateway: Gateway
    audit_path: Path
    upstream: FakeUpstream
    streams: StreamRegistry

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(x) for x in self.audit_path.read_text().splitlines()]

    async def records(self, n: int) -> list[dict[str, Any]]:
        """The audit records once there are at least ``n``: a streamed answer's record lands
        after its last byte has gone, so the client can be faster than the record."""
        return list(
            await eventually(lambda: len(a := self.audit()) >= n and a, what=f"{n} records")
        )

    async def key(self, name: str = "laptop", **kw: Any) -> str:
        return (await self.store.create(name, **kw)).key


# Timeouts of the test gateway's upstream: far beyond anything a loaded machine needs, so that
# no test outcome depends on how fast the machine is. A test about a timeout sets a short one
# through make_gw(upstream={...}) and makes the upstream silent for good, never just for long.
UPSTREAM_TIMEOUTS = {"first_byte_timeout": 60, "idle_timeout": 60}


def gateway_config(
    upstream_url: str,
    tokens: dict[str, Any] | None = None,
    listener: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    **server: Any,
) -> config.Config:
    doc: dict[str, Any] = {
        "server": server,
        "upstream": [{"url": upstream_url, **UPSTREAM_TIMEOUTS, **(upstream or {})}],
        "tokens": tokens or {},
    }
    if listener is not None:
        doc["listener"] = [listener]
    else:
        doc["server"] = {"listen": ["127.0.0.1:1"], **server}
    return config.build(doc, "<test>")


GwFactory = Callable[..., Awaitable[GW]]


@pytest.fixture
async def make_gw(
    tmp_path: Path, upstream: FakeUpstream, store: KeyStore
) -> AsyncIterator[GwFactory]:
    """Start gateways with a given config; each listens on 127.0.0.1, optionally with TLS."""
    runners: list[web.AppRunner] = []
    audits: list[Audit] = []

    async def start(ssl_context: Any = None, **cfg_kw: Any) -> GW:
        audit_path = tmp_path / f"audit{len(audits)}.jsonl"
        audit = Audit(audit_path, to_log=False)
        audits.append(audit)
        streams = StreamRegistry()
        cfg_kw.setdefault("max_body_bytes", 4096)
        gateway = Gateway(gateway_config(upstream.url, **cfg_kw), store, audit, streams)
        runner = GatewayRunner(gateway.make_app(0), handler_cancellation=True, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        return GW(
            f"{scheme}://127.0.0.1:{port}", port, store, gateway, audit_path, upstream, streams
        )

    yield start
    upstream.release.set()
    for r in runners:
        await r.cleanup()
    for a in audits:
        a.close()


@pytest.fixture
async def gw(make_gw: GwFactory) -> GW:
    return await make_gw()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def eventually(
    condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned), for at most ``timeout``.

    For effects that land after the answer (an audit line, a log record): the bound is only
    there so that a broken feature fails instead of hanging, never a measure of speed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(0.02)


async def raw_request(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send bytes as they are (no client library to tidy them up) and read the answer."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        await w.drain()
        out = b""
        async with asyncio.timeout(timeout):
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        return out
    finally:
        w.close()


def _complete(resp: bytes) -> bool:
    head, _, body = resp.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return resp.endswith(b"0\r\n\r\n")


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, to fill a disk for real (the audit file's, the state's)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the suite as root, as .ci/run does)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
