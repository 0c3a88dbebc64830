"""The client goes away at each phase of a request: during its head, during its body, before
the first byte of the answer, mid-stream. Raw sockets, so the moment is exactly the one named.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import GW
from tests.fakeupstream import FakeUpstream

from .conftest import BASE_CONFIG, SOON, Running, StartDaemon
from .peers import UploadProbe

PHASES = ["head", "body", "first_byte", "mid_stream"]
BODY = json.dumps({"model": "llama3", "prompt": "x" * 900}).encode()


def _head(key: str, path: str = "/api/generate", length: int = len(BODY), more: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n{more}\r\n"
    ).encode()


async def _read_until(r: asyncio.StreamReader, marker: bytes) -> bytes:
    got = b""
    async with asyncio.timeout(SOON):
        while marker not in got:
            chunk = await r.read(65536)
            assert chunk, f"connection closed before {marker!r}: {got!r}"
            got += chunk
    return got


async def leave(port: int, key: str, phase: str, upstream: FakeUpstream) -> None:
    """Open a connection, get the request to ``phase``, then close the socket."""
    upstream.received.clear()
    if phase == "first_byte":
        upstream.header_delay = 3600  # the upstream has the request and is thinking
    if phase == "mid_stream":
        upstream.hold_after = 1  # one chunk, then the upstream waits
        upstream.release.clear()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = _head(key) + BODY
        if phase == "head":
            w.write(request[: request.index(b"Authorization") + 20])  # half a header line
        elif phase == "body":
            # 100-continue: the daemon's "go on" is the sign that it has authenticated the
            # head and is about to read the body, so the client leaves during the body.
            w.write(_head(key, more="Expect: 100-continue\r\n"))
            await w.drain()
            await _read_until(r, b"HTTP/1.1 100 Continue\r\n\r\n")
            w.write(BODY[:100])  # 100 of the 9xx bytes announced
        else:
            w.write(request)
        await w.drain()
        if phase == "first_byte":
            await asyncio.wait_for(upstream.received.wait(), SOON)
        elif phase == "mid_stream":
            await _read_until(r, b'"tok0 "')
    finally:
        w.close()


def _quiet(upstream: FakeUpstream) -> None:
    upstream.header_delay = 0
    upstream.hold_after = None
    upstream.release.set()


async def _warm(d: Running, upstream: FakeUpstream) -> int:
    """One whole stream first (it leaves the daemon's pooled upstream connection open);
    then the daemon's descriptor count, which every fault must come back to."""
    await d.stream(upstream)
    await d.wait_records(lambda r: r["path"] == "/api/generate")
    return d.fds()


@pytest.mark.parametrize("phase", PHASES)
async def test_the_daemon_lets_go_of_a_client_that_leaves(
    start_daemon: StartDaemon, upstream: FakeUpstream, phase: str
) -> None:
    d = await start_daemon(upstream.url, BASE_CONFIG.replace('"3s"', '"60s"'))
    baseline = await _warm(d, upstream)
    before = len(upstream.seen)

    await leave(d.d.port, d.key, phase, upstream)

    if phase in ("first_byte", "mid_stream"):
        # The upstream request is cancelled: the upstream saw its connection go.
        seen = upstream.seen[before]
        await asyncio.wait_for(seen.cancelled.wait(), SOON)
        fault = await d.wait_records(lambda r: r["path"] == "/api/generate", count=2)
    elif phase == "body":
        fault = await d.wait_records(lambda r: r["path"] == "/api/generate", count=2)
    _quiet(upstream)
    await d.stream(upstream)  # still serving; and its record orders after the fault's
    expected = 2 if phase == "head" else 3  # the warm-up, the fault's (if any), the last
    records = await d.wait_records(lambda r: r["path"] == "/api/generate", count=expected)
    if phase == "head":
        # No request was ever made (aiohttp's parser never got a whole head), so there is
        # nothing to forward and nothing to audit: only the warm-up and the last stream.
        assert len(upstream.seen) == before + 1
        assert [r["outcome"] for r in records] == ["ok", "ok"]
    else:
        # Exactly one record for the request that was left, and it says what happened.
        assert [r["outcome"] for r in records] == ["ok", "client_disconnected", "ok"]
        rec = fault[1]
        assert rec["reason"] == "client_went_away" and rec["key"] == "k"
        assert rec["model"] == (None if phase == "body" else "llama3")
        if phase == "body":
            # The 100 bytes may or may not have been read before the loss was noticed.
            assert rec["bytes_in"] in (0, 100) and rec["status"] == 0
            assert len(upstream.seen) == before + 1  # never forwarded: the body never came
        elif phase == "first_byte":
            assert rec["status"] == 0 and rec["bytes_out"] == 0  # no answer was started
        else:
            first = FakeUpstream.ndjson_chunk(0, upstream.chunks, "llama3")
            assert rec["status"] == 200 and rec["bytes_out"] == len(first)
    # No descriptor left behind: the client's socket and the upstream's are both closed.
    assert await d.fds_back_to(baseline) <= baseline, d.fd_targets()


async def test_a_client_that_leaves_mid_upload_ends_the_upstream_upload(
    start_daemon: StartDaemon,
) -> None:
    probe = UploadProbe()
    await probe.start()
    try:
        d = await start_daemon(probe.url)
        assert await d.status() == 200  # leaves the pooled upstream connection in the count
        baseline = d.fds()
        probe.started.clear()
        probe.completed = False
        path = "/api/blobs/sha256:" + "ab" * 32
        _r, w = await asyncio.open_connection("127.0.0.1", d.d.port)
        w.write(_head(d.key, path, 1_000_000) + b"y" * 5000)  # 5000 of 1 MB
        await w.drain()
        await asyncio.wait_for(probe.started.wait(), SOON)
        async with asyncio.timeout(SOON):
            while probe.received < 5000:  # streamed through as it came
                await asyncio.sleep(0.02)
        w.close()
        await asyncio.wait_for(probe.broken.wait(), SOON)
        assert not probe.completed
        (rec,) = await d.wait_records(lambda r: r["path"] == path)
        assert rec["outcome"] == "client_disconnected" and rec["reason"] == "client_went_away"
        assert await d.status() == 200
        assert await d.fds_back_to(baseline) <= baseline, d.fd_targets()
    finally:
        await probe.stop()


@pytest.mark.parametrize("phase", PHASES)
async def test_no_task_is_left_behind(gw: GW, phase: str) -> None:
    """The same, in process (tasks are not visible from outside a process): every asyncio
    task the request started has ended once the client is gone."""
    key = await gw.key()
    upstream = gw.upstream
    baseline = len(asyncio.all_tasks())
    before = len(upstream.seen)
    await leave(gw.port, key, phase, upstream)
    if phase in ("first_byte", "mid_stream"):
        await asyncio.wait_for(upstream.seen[before].cancelled.wait(), SOON)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SOON
    while len(asyncio.all_tasks()) > baseline and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= baseline, asyncio.all_tasks()
    _quiet(upstream)
    if phase != "head":
        assert [r["outcome"] for r in gw.audit()] == ["client_disconnected"]
    else:
        assert gw.audit() == []
