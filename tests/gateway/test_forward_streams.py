"""Streams pass through chunk by chunk, byte-identical; failures end them the right way."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.conftest import GW, GwFactory

# How long a test waits for something that must happen: a bound so that a broken feature fails
# rather than hangs, never a measure of speed (the machine may be busy).
PATIENCE = 30


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/api/generate", "ndjson"), ("/api/chat", "chat"), ("/v1/chat/completions", "sse")],
)
async def test_first_chunk_arrives_while_upstream_holds_the_second(
    gw: GW, http, path: str, kind: str
) -> None:
    key = await gw.key()
    gw.upstream.hold_after = 1
    body = {"model": "llama3", "prompt": "hi", "messages": [], "stream": True}
    async with http.post(gw.url + path, json=body, headers=_h(key)) as r:
        assert r.status == 200
        first = await asyncio.wait_for(r.content.readany(), PATIENCE)
        # The upstream is still holding chunk 2: what we have is exactly chunk 1.
        f = {
            "ndjson": gw.upstream.ndjson_chunk,
            "chat": gw.upstream.chat_chunk,
            "sse": gw.upstream.sse_chunk,
        }[kind]
        assert first == f(0, gw.upstream.chunks, "llama3")
        gw.upstream.release.set()
        rest = await asyncio.wait_for(r.read(), PATIENCE)
    assert first + rest == gw.upstream.stream_bytes(kind)  # byte-identical
    ctype = r.headers["Content-Type"]
    assert ctype == ("text/event-stream" if kind == "sse" else "application/x-ndjson")


async def test_client_disconnect_cancels_upstream(gw: GW) -> None:
    key = await gw.key()
    gw.upstream.hold_after = 1  # held until the test ends: only the client leaving can end it
    s = aiohttp.ClientSession()
    r = await s.post(gw.url + "/api/generate", json={"model": "llama3"}, headers=_h(key))
    await asyncio.wait_for(r.content.readany(), PATIENCE)
    seen = gw.upstream.seen[0]
    t0 = time.monotonic()
    r.close()  # the client goes away mid-stream
    await s.close()
    await asyncio.wait_for(seen.cancelled.wait(), PATIENCE)
    # Not the idle timeout (60 s) doing it: well before that, however busy the machine.
    assert seen.cancelled_at is not None and seen.cancelled_at - t0 < PATIENCE
    rec = (await gw.records(1))[-1]
    assert rec["outcome"] == "client_disconnected" and rec["key"] == "laptop"


async def test_upstream_refused_is_502(gw: GW, http, upstream) -> None:
    key = await gw.key()
    await upstream.stop()
    async with http.post(
        gw.url + "/v1/chat/completions", json={"model": "m"}, headers=_h(key)
    ) as r:
        assert r.status == 502
        err = (await r.json())["error"]
        assert err["code"] == "upstream_unreachable" and "cannot reach" in err["message"]
    assert (await gw.records(1))[-1]["reason"] == "upstream_unreachable"


async def test_first_byte_timeout_is_504_and_daemon_keeps_serving(make_gw: GwFactory, http) -> None:
    gw = await make_gw(upstream={"first_byte_timeout": 1})
    key = await gw.key()
    gw.upstream.header_delay = 3600  # silent for good: only the timeout can answer
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 504
        assert "no answer within 1s" in (await r.json())["error"]
    gw.upstream.header_delay = 0
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 200


@pytest.mark.parametrize("failure", ["stall", "reset"])
async def test_mid_stream_failure_ends_the_client_stream_as_an_error(
    make_gw: GwFactory, http, failure: str
) -> None:
    gw = await make_gw(upstream={"idle_timeout": 1})
    key = await gw.key()
    if failure == "stall":
        gw.upstream.stall_after = 2  # silent for good: only the idle timeout can end it
    else:
        gw.upstream.reset_after = 2
    got = b""
    async with http.post(gw.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                got += chunk
    lines = got.splitlines()
    assert json.loads(lines[0])["response"] == "tok0 "
    assert "error" in json.loads(lines[-1])  # the SDK sees why, then the stream breaks
    rec = (await gw.records(1))[-1]
    assert rec["outcome"] == ("upstream_stalled" if failure == "stall" else "upstream_error")
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 200


async def test_kill_streams_on_revoke_ends_the_stream(gw: GW, http) -> None:
    key = await gw.key("victim")
    gw.upstream.hold_after = 1
    async with http.post(gw.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r:
        await asyncio.wait_for(r.content.readany(), PATIENCE)
        ident = await gw.store.revoke("victim")
        assert gw.streams.kill(ident.kid) == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(r.read(), PATIENCE)
    await asyncio.wait_for(gw.upstream.seen[0].cancelled.wait(), PATIENCE)
    assert (await gw.records(1))[-1]["outcome"] == "killed"
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 401


async def test_one_audit_record_per_request_and_no_secret(gw: GW, http) -> None:
    key = await gw.key()
    async with http.post(gw.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r:
        body = await r.read()
    async with http.get(gw.url + "/api/tags", headers=_h(key + "garbage")) as r:
        assert r.status == 401
    async with http.get(gw.url + "/api/../x", headers=_h(key)) as r:
        pass
    recs = await gw.records(3)
    assert len(recs) == 3
    ok = recs[0]
    assert ok["key"] == "laptop" and ok["key_id"] and ok["model"] == "llama3"
    assert ok["status"] == 200 and ok["bytes_out"] == len(body) and ok["bytes_in"] > 0
    assert ok["method"] == "POST" and ok["path"] == "/api/generate" and ok["client"] == "127.0.0.1"
    assert ok["duration_ms"] >= 0 and len(ok["request_id"]) == 16 and ok["outcome"] == "ok"
    assert recs[1]["outcome"] == "unauthenticated" and recs[1]["key"] is None
    raw = gw.audit_path.read_text()
    assert key not in raw and key[9:30] not in raw
