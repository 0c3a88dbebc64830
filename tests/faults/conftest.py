"""The fault suite's parts: the real daemon process, its audit file and descriptors.

Every fault here is injected for real (a refused port, a silent or resetting server, a
client socket closed at a chosen moment, signals, a full tmpfs, a damaged keyring file).
What a test asserts is what the client saw, what the audit trail says, and that the daemon
goes on serving afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream

# Short timeouts keep the suite quick; generous enough that a loaded machine (two cores,
# many test runs at once) does not trip them by accident.
BASE_CONFIG = """\
[server]
drain_timeout = "1s"

[[upstream]]
first_byte_timeout = "3s"
idle_timeout = "3s"
connect_timeout = "3s"
"""
# How long to wait for something that should happen "soon": only a bound against hanging.
SOON = 20.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long fault run (kept in make test; deselect with -m 'not slow')"
    )


def signal_and_mark(d: Daemon, sig: signal.Signals) -> int:
    """Send ``sig``; the index in ``d.messages`` after which its notifications will appear.

    The harness reads the notify socket only while it waits; the kernel queues 10 datagrams
    (net.unix.max_dgram_qlen) and the daemon drops what does not fit (it never blocks on
    it), so with a watchdog ping every 150 ms a RELOADING=1 or STOPPING=1 sent after a
    quiet spell of a few seconds would be lost. Read what is queued first.
    """
    d._drain()
    mark = len(d.messages)
    d.send(sig)
    return mark


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Running:
    """A started daemon with one key that may use every route."""

    d: Daemon
    key: str
    audit_file: Path | None = None  # where [audit] file points, if not the default

    @property
    def url(self) -> str:
        return self.d.url

    @property
    def audit_path(self) -> Path:
        return self.audit_file or self.d.state_dir / "audit.jsonl"

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(x) for x in self.audit_path.read_text().splitlines() if x]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.audit()
            if r.get("kind") == "request" and (path is None or r.get("path") == path)
        ]

    async def wait_records(
        self, pred: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = SOON
    ) -> list[dict[str, Any]]:
        """The request records matching ``pred`` once there are ``count`` of them (records
        are written when the request ends, which may be just after the client saw it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = [r for r in self.requests() if pred(r)]
            if len(got) >= count or loop.time() > deadline:
                return got
            await asyncio.sleep(0.05)

    def fds(self) -> int:
        assert self.d.proc is not None
        return len(os.listdir(f"/proc/{self.d.proc.pid}/fd"))

    def fd_targets(self) -> list[str]:
        """What the descriptors point at (for a failure message)."""
        assert self.d.proc is not None
        base = f"/proc/{self.d.proc.pid}/fd"
        out = []
        for name in os.listdir(base):
            with contextlib.suppress(OSError):  # closed since the listing
                out.append(os.readlink(f"{base}/{name}"))
        return sorted(out)

    async def fds_back_to(self, baseline: int, timeout: float = SOON) -> int:
        """Poll until the daemon holds no more descriptors than ``baseline``; the count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        n = self.fds()
        while n > baseline and loop.time() < deadline:
            await asyncio.sleep(0.05)
            n = self.fds()
        return n

    async def status(self, path: str = "/api/tags", key: str | None = None) -> int:
        """One request on a fresh connection (closed after), so no keep-alive descriptor
        lingers in the daemon."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.get(self.url + path, headers=bearer(key or self.key)) as r,
        ):
            await r.read()
            return r.status

    async def stream(self, upstream: FakeUpstream) -> None:
        """A whole NDJSON stream, byte-identical: the daemon serves."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.post(
                self.url + "/api/generate", json={"model": "llama3"}, headers=bearer(self.key)
            ) as r,
        ):
            assert r.status == 200
            assert await asyncio.wait_for(r.read(), SOON) == upstream.stream_bytes("ndjson")


def fill(fs: Path) -> Path:
    """Fill ``fs`` to the last byte; the filler file, to remove to make room again."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (4096, 1):  # pages, then the last bytes; bounded by the 64 KiB
            for _ in range(64 * 1024 // size):
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
    with open(filler, "ab", buffering=0) as f, contextlib.suppress(OSError):
        f.write(b"\0")
        raise AssertionError(f"{fs} is not full")
    return filler


StartDaemon = Callable[..., Any]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """start_daemon(upstream_url, config=BASE_CONFIG) -> Running (a key with every scope)."""
    started: list[Daemon] = []

    async def start(
        upstream_url: str,
        config: str = BASE_CONFIG,
        name: str = "d",
        audit_file: Path | None = None,
    ) -> Running:
        d = Daemon(upstream_url, tmp_path / name / "state", config_text=config)
        started.append(d)
        await d.start()
        created = await d.authctl_json("create", "k", "--scope", "inference", "--scope", "admin")
        return Running(d, created["key"], audit_file)

    yield start
    for d in started:
        try:
            await d.stop()
        except TimeoutError:
            pass  # stop() has killed it; the test that left it hanging has failed already
        finally:
            d.close()
