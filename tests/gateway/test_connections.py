"""Connections cannot be hoarded: header deadline, idle timeout, per-source and global caps.

Real sockets on loopback; distinct source addresses from 127.0.0.0/8 stand for distinct
clients. Every socket a test opens is closed at its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from localai_authd.audit import Audit
from localai_authd.gateway.app import Gateway
from localai_authd.gateway.connections import ConnectionGuard, GuardedRunner
from localai_authd.keys.store import KeyStore
from localai_authd.limitsconfig import ConnectionsConfig
from localai_authd.streams import StreamRegistry
from tests.conftest import gateway_config
from tests.fakeupstream import FakeUpstream

Start = Callable[..., Awaitable[tuple[int, ConnectionGuard]]]
PARTIAL_HEAD = b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
async def start_guarded(
    tmp_path: Path, upstream: FakeUpstream, store: KeyStore
) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []
    audit = Audit(tmp_path / "audit.jsonl", to_log=False)

    async def start(**conn: Any) -> tuple[int, ConnectionGuard]:
        guard = ConnectionGuard(ConnectionsConfig(**conn))
        gateway = Gateway(gateway_config(upstream.url), store, audit, StreamRegistry())
        runner = GuardedRunner(
            gateway.make_app(0), guard, handler_cancellation=True, access_log=None
        )
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner.addresses[0][1], guard

    yield start
    for r in runners:
        await r.cleanup()
    audit.close()


async def _connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _eof(reader: asyncio.StreamReader, bound: float = 60.0) -> bytes:
    """Everything the server sends until it closes (generous bound: no timing asserted)."""
    out = b""
    async with asyncio.timeout(bound):
        while chunk := await reader.read(65536):
            out += chunk
    return out


async def test_a_silent_connection_is_closed_by_the_header_deadline(start_guarded: Start) -> None:
    port, guard = await start_guarded(header_timeout=1)
    r1, w1 = await _connect(port)
    r2, w2 = await _connect(port)
    w2.write(PARTIAL_HEAD)  # a head that never ends
    await w2.drain()
    try:
        assert await _eof(r1) == b""
        assert await _eof(r2) == b""
    finally:
        w1.close()
        w2.close()
    assert guard.header_timeouts == 2
    for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
        if guard.total == 0:
            break
        await asyncio.sleep(0.01)
    assert guard.total == 0 and not guard.by_source


async def test_an_idle_keep_alive_connection_is_closed(start_guarded: Start) -> None:
    port, _guard = await start_guarded(idle_timeout=1, header_timeout=30)
    r, w = await _connect(port)
    try:
        w.write(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # 401: no key
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 401")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await r.readexactly(length)
        assert await _eof(r) == b""  # kept alive, then closed once idle
    finally:
        w.close()


async def test_500_slowloris_connections_do_not_lock_out_a_legitimate_client(
    start_guarded: Start, store: KeyStore
) -> None:
    # The header deadline far beyond the test's length, however busy the machine: the 500
    # must still hang at the end.
    port, guard = await start_guarded(header_timeout=600, max_per_source=100, max_total=1000)
    key = (await store.create("laptop")).key
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for n in range(500):
            r, w = await _connect(port, f"127.0.0.{2 + n // 100}")
            w.write(PARTIAL_HEAD)
            held.append((r, w))
        await asyncio.gather(*(w.drain() for _, w in held))
        for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
            if guard.total == 500:
                break
            await asyncio.sleep(0.01)
        assert guard.total == 500
        # The legitimate client, from its own address, is served while they hang.
        async with aiohttp.ClientSession() as s:
            for _ in range(20):
                async with s.get(
                    f"http://127.0.0.1:{port}/api/tags",
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    assert resp.status == 200
        # The slow sources are at their cap: the next one is refused at once.
        r, w = await _connect(port, "127.0.0.2")
        held.append((r, w))
        refused = await _eof(r)
        assert refused.startswith(b"HTTP/1.1 429 ") and b"too many connections" in refused
        assert all(not r.at_eof() for r, _ in held[:500])  # still hanging, not served
    finally:
        for _, w in held:
            w.close()


async def test_global_cap_refuses_with_one_log_line(
    start_guarded: Start, caplog: pytest.LogCaptureFixture
) -> None:
    port, guard = await start_guarded(max_per_source=10, max_total=4)
    held = []
    caplog.set_level(logging.WARNING, "localai_authd.connections")
    try:
        for n in range(4):
            held.append(await _connect(port, f"127.0.0.{10 + n}"))
        for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
            if guard.total == 4:
                break
            await asyncio.sleep(0.01)
        answers = []
        for n in range(3):
            r, w = await _connect(port, f"127.0.0.{20 + n}")
            held.append((r, w))
            answers.append(await _eof(r))
    finally:
        for _, w in held:
            w.close()
    assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
    assert guard.refused == 3
    lines = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
    assert len(lines) == 1 and "max_total 4" in lines[0]  # rate-limited: one line for three


def test_global_cap_stays_below_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    import resource

    from localai_authd.gateway.connections import RESERVED_FDS, fd_ceiling

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    try:
        assert fd_ceiling(100) == 100
        assert fd_ceiling(32768) == 4096 - RESERVED_FDS
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "raise LimitNOFILE= or lower max_total" in caplog.text
