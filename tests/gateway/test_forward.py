"""Forwarding details: redirects, many concurrent streams, several upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import aiohttp

from tests.conftest import GW, GwFactory
from tests.fakeupstream import FakeUpstream


async def test_redirects_are_passed_back_not_followed(gw: GW, http) -> None:
    key = await gw.key()
    gw.upstream.redirect = True
    async with http.get(
        gw.url + "/api/version", headers={"x-api-key": key}, allow_redirects=False
    ) as r:
        assert r.status == 302
        assert r.headers["Location"] == "http://127.0.0.1:1/elsewhere"
    assert [s.path for s in gw.upstream.seen] == ["/api/version"]  # nothing followed


async def test_more_than_100_concurrent_streams_are_not_queued(gw: GW) -> None:
    # aiohttp's default connector would silently queue stream 101 until one ends.
    key = await gw.key()
    gw.upstream.hold_after = 1
    n = 130
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        resps = await asyncio.gather(
            *(
                s.post(
                    gw.url + "/api/generate",
                    json={"model": "m"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                for _ in range(n)
            )
        )
        # Generous bounds: 130 streams on a busy machine take a while; the point is that none
        # waits for another to end (they are all held until every one has started).
        firsts = await asyncio.wait_for(asyncio.gather(*(r.content.readany() for r in resps)), 90)
        assert all(f.startswith(b'{"model": "m"') for f in firsts)
        assert len(gw.upstream.seen) == n  # every one reached the upstream while all are held
        gw.upstream.release.set()
        bodies = await asyncio.wait_for(asyncio.gather(*(r.read() for r in resps)), 90)
        for f, b in zip(firsts, bodies, strict=True):
            assert f + b == gw.upstream.stream_bytes("ndjson", "m")
        for r in resps:
            r.close()


async def test_several_upstreams_by_prefix(make_gw: GwFactory, http) -> None:
    second = FakeUpstream()
    await second.start()
    try:
        from localai_authd import config

        g = await make_gw()
        g.gateway.apply_config(
            config.build(
                {
                    "server": {"listen": ["127.0.0.1:1"]},
                    "upstream": [{"url": g.upstream.url}, {"url": second.url, "prefix": "/gpu2"}],
                },
                "<test>",
            )
        )
        key = await g.key()
        h = {"x-api-key": key}
        async with http.get(g.url + "/api/tags", headers=h) as r:
            assert r.status == 200
        async with http.get(g.url + "/gpu2/api/tags", headers=h) as r:
            assert r.status == 200
        async with http.post(g.url + "/gpu2/api/pull", json={"model": "x"}, headers=h) as r:
            assert r.status == 403  # the policy sees /api/pull, as the upstream will
        assert [s.path for s in g.upstream.seen] == ["/api/tags"]
        assert [s.path for s in second.seen] == ["/api/tags"]
        seen = dict((k.lower(), v) for k, v in second.seen[0].headers)
        assert seen["host"] == f"127.0.0.1:{second.port}"
    finally:
        await second.stop()


async def test_server_header_does_not_advertise_versions(gw: GW, http) -> None:
    key = await gw.key()
    async with http.get(gw.url + "/api/tags") as r:
        assert r.headers["Server"] == "localai-authd"
    async with http.get(gw.url + "/api/tags", headers={"x-api-key": key}) as r:
        assert r.headers["Server"] == "localai-authd"


async def test_the_upstreams_own_key_replaces_the_clients(make_gw: GwFactory, http) -> None:
    from localai_authd import config

    g = await make_gw()
    g.gateway.apply_config(
        config.build(
            {
                "server": {"listen": ["127.0.0.1:1"]},
                "upstream": [{"url": g.upstream.url, "key_name": "vllm"}],
            },
            "<test>",
        )
    )
    key = await g.key()
    h = {"Authorization": f"Bearer {key}"}
    async with http.get(g.url + "/v1/models", headers=h) as r:
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "upstream_key_missing"
    assert g.upstream.seen == []  # fail closed: nothing sent without the upstream's key
    await g.store.set_upstream_key("vllm", "vllm-server-key-123")
    async with http.get(g.url + "/v1/models", headers=h) as r:
        assert r.status == 200
    auths = [v for k, v in g.upstream.seen[0].headers if k.lower() == "authorization"]
    assert auths == ["Bearer vllm-server-key-123"]
    assert "vllm-server-key-123" not in g.audit_path.read_text()


async def _scenario(
    timeout_cm: Callable[[float], AbstractAsyncContextManager[object]], scenario: str
) -> str:
    """What leaves a timeout block, as seen from outside the task, in one scenario."""
    loop = asyncio.get_running_loop()

    async def body() -> str:
        async with timeout_cm(0.05):
            if scenario == "done":
                await asyncio.sleep(0)
                return "done"
            if scenario == "swallowed":  # the block catches the cancellation itself
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    return "swallowed"
            await asyncio.sleep(10)
        return "unreachable"

    async def run() -> str:
        try:
            return await body()
        except TimeoutError:
            return f"timeout (cancelling {asyncio.current_task().cancelling()})"  # type: ignore[union-attr]

    task = loop.create_task(run())
    if scenario == "cancelled":  # someone else cancels before the time is up
        loop.call_later(0.01, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


async def test_the_first_byte_timer_behaves_as_asyncio_timeout() -> None:
    """The hand-rolled first-byte timer keeps asyncio.timeout's contract, scenario by scenario:
    expiry is a TimeoutError, another's cancellation stays a cancellation, and nothing is
    left pending on the task."""
    from localai_authd.gateway.forward import _FirstByte

    scenarios = ("done", "expires", "cancelled", "swallowed")
    theirs = [await _scenario(asyncio.timeout, s) for s in scenarios]
    ours = [await _scenario(_FirstByte, s) for s in scenarios]
    assert ours == theirs
    assert theirs == ["done", "timeout (cancelling 0)", "cancelled", "swallowed"]
