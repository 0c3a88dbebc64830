"""The upstream misbehaves: refuses, hangs before its first byte, resets mid-stream, drips."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from tests.fakeupstream import FakeUpstream

from .conftest import BASE_CONFIG, SOON, StartDaemon, bearer
from .peers import Drip


async def test_a_refused_connection_is_502_and_serving_resumes_with_the_upstream(
    start_daemon: StartDaemon,
) -> None:
    # A bound socket that never listens: connecting to it is refused (RST), for real,
    # and the port stays ours so nothing else can take it before the upstream comes back.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    port = hole.getsockname()[1]
    d = await start_daemon(f"http://127.0.0.1:{port}")
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/api/generate", json={"model": "llama3"}, headers=bearer(d.key)) as r,
    ):
        assert r.status == 502
        body = await r.json()
    assert "cannot reach the upstream" in body["error"]
    (rec,) = await d.wait_records(lambda r: r["path"] == "/api/generate")
    assert rec["status"] == 502 and rec["outcome"] == "upstream_error"
    assert rec["reason"] == "upstream_unreachable" and rec["key"] == "k"

    hole.close()
    back = FakeUpstream()
    await back.start(port)
    try:
        await d.stream(back)  # the same daemon, no restart: serving again
    finally:
        await back.stop()


async def test_silence_before_the_first_byte_is_504_and_the_upstream_request_is_dropped(
    start_daemon: StartDaemon, upstream: FakeUpstream
) -> None:
    d = await start_daemon(upstream.url)  # first_byte_timeout = 3s
    upstream.header_delay = 3600
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/api/generate", json={"model": "llama3"}, headers=bearer(d.key)) as r,
    ):
        assert r.status == 504
        assert "no answer within 3s" in (await r.json())["error"]
    # The gateway gave up on the upstream request too: it saw its connection go.
    await asyncio.wait_for(upstream.seen[0].cancelled.wait(), SOON)
    (rec,) = await d.wait_records(lambda r: r["path"] == "/api/generate")
    assert rec["status"] == 504 and rec["reason"] == "upstream_timeout"
    assert rec["outcome"] == "upstream_error"
    upstream.header_delay = 0
    await d.stream(upstream)


@pytest.mark.parametrize("kind", ["ndjson", "sse"])
async def test_a_reset_mid_stream_ends_the_clients_stream_as_an_error(
    start_daemon: StartDaemon, upstream: FakeUpstream, kind: str
) -> None:
    d = await start_daemon(upstream.url)
    upstream.reset_after = 2  # two chunks, then the upstream's TCP connection is aborted
    path = "/api/generate" if kind == "ndjson" else "/v1/chat/completions"
    got = b""
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + path, json={"model": "llama3", "stream": True}, headers=bearer(d.key)) as r,
    ):
        assert r.status == 200
        # Not a clean end: no terminating chunk, the connection is cut.
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                got += chunk
    full = upstream.stream_bytes(kind)
    sent = full[: len(b"".join(full.splitlines(keepends=True)[: 2 if kind == "ndjson" else 4]))]
    assert got.startswith(sent) and got != full
    tail = got[len(sent) :]  # the why, in the stream's own format, for SDKs to show
    if kind == "ndjson":
        assert json.loads(tail)["error"] == "the upstream connection broke mid-stream"
    else:
        assert tail.startswith(b"data: ") and tail.endswith(b"\n\n")
        err = json.loads(tail[len(b"data: ") :])["error"]
        assert err["message"] == "the upstream connection broke mid-stream"
        assert err["code"] == "upstream_reset"  # what happened, as the audit record says
    (rec,) = await d.wait_records(lambda r: r["path"] == path)
    assert rec["status"] == 200 and rec["outcome"] == "upstream_error"
    # bytes_out counts what came from the upstream (as for refusals: our own words are
    # not counted), so exactly the part relayed before the reset.
    assert rec["reason"] == "upstream_reset" and rec["bytes_out"] == len(sent)
    upstream.reset_after = None
    await d.stream(upstream)


async def test_a_drip_is_not_cut_by_the_idle_timeout_but_silence_is(
    start_daemon: StartDaemon, upstream: FakeUpstream
) -> None:
    idle = 4.0
    drip = Drip(count=7)  # a byte a second: about 6 s in all, longer than the idle timeout
    await drip.start()
    try:
        config = BASE_CONFIG.replace('idle_timeout = "3s"', f'idle_timeout = "{idle:g}s"')
        d = await start_daemon(drip.url, config)
        got = b""
        async with (
            aiohttp.ClientSession() as s,
            s.post(d.url + "/api/generate", json={"model": "m"}, headers=bearer(d.key)) as r,
        ):
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async with asyncio.timeout(60):  # a bound against hanging, nothing more
                    async for chunk in r.content.iter_any():
                        got += chunk
        # The live drip went through whole, though it lasted longer than the idle timeout:
        # the timeout is per silence, not per stream.
        assert got.startswith(b"x" * 7)
        assert drip.sent_at[-1] - drip.sent_at[0] > idle
        # Then the upstream fell silent: the idle timeout ended the stream as an error, and
        # the gateway let go of the upstream.
        assert b"went silent for 4s" in got[7:]
        await asyncio.wait_for(drip.gone.wait(), SOON)
        (rec,) = await d.wait_records(lambda r: r["path"] == "/api/generate")
        assert rec["outcome"] == "upstream_stalled" and rec["reason"] == "upstream_idle_timeout"
        assert rec["bytes_out"] == 7  # the upstream's bytes, all relayed
        assert await d.status() == 200  # /api/tags from the drip server: still serving
    finally:
        await drip.stop()
