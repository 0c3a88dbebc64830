"""Metrics listener, health and readiness against a real gateway, upstream and key store."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from localai_authd.gateway.observe import attach, start_listener
from localai_authd.metrics import Metrics
from tests.conftest import GW, GwFactory

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(http: aiohttp.ClientSession, url: str) -> tuple[str, Samples]:
    async with http.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return text, out


def _get(s: Samples, name: str, **labels: str) -> float:
    return s.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def observed(make_gw: GwFactory) -> AsyncIterator[tuple[GW, Metrics, str]]:
    gw = await make_gw()
    metrics = attach(gw.gateway)
    runner, port = await start_listener(metrics, gw.gateway, "127.0.0.1", 0)
    yield gw, metrics, f"http://127.0.0.1:{port}/metrics"
    await runner.cleanup()


async def test_metrics_follow_traffic(
    observed: tuple[GW, Metrics, str], http: aiohttp.ClientSession
) -> None:
    gw, _, url = observed
    key = await gw.key("laptop")
    _, before = await _scrape(http, url)
    assert _get(before, "localai_authd_upstream_up", upstream="/") == 1
    auth = {"Authorization": f"Bearer {key}"}
    async with http.post(
        f"{gw.url}/api/chat", json={"model": "llama3", "messages": []}, headers=auth
    ) as r:
        assert r.status == 200
        await r.read()
    async with http.get(f"{gw.url}/api/tags", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    async with http.get(f"{gw.url}/api/tags") as r:
        assert r.status == 401
    async with http.get(f"{gw.url}/api/pull?/etc/passwd", headers=auth) as r:
        assert r.status in (403, 405)
    text, after = await _scrape(http, url)
    assert (
        _get(after, "localai_authd_requests_total", route="chat", status_class="2xx", key="laptop")
        == 1
    )
    assert (
        _get(after, "localai_authd_requests_total", route="unrouted", status_class="4xx", key="")
        == 2
    )
    assert _get(after, "localai_authd_request_duration_seconds_count", route="chat") == 1
    assert _get(after, "localai_authd_time_to_first_byte_seconds_count", route="chat") == 1
    failures = {
        dict(labels)["reason"]: v
        for (n, labels), v in after.items()
        if n == "localai_authd_auth_failures_total"
    }
    assert sum(failures.values()) == 2 and "no_credentials" in failures
    assert _get(after, "localai_authd_streams_in_flight") == 0
    # No client-given path or model string becomes a label value.
    assert "/etc/passwd" not in text and "llama3" not in text


async def test_streams_in_flight_counts_a_held_stream(
    observed: tuple[GW, Metrics, str], http: aiohttp.ClientSession
) -> None:
    gw, _, url = observed
    key = await gw.key("streamer")
    gw.upstream.hold_after = 1
    gw.upstream.release.clear()
    async with http.post(
        f"{gw.url}/api/generate",
        json={"model": "llama3", "prompt": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        await r.content.readline()  # the first chunk is here; the rest is held upstream
        _, during = await _scrape(http, url)
        assert _get(during, "localai_authd_streams_in_flight") == 1
        gw.upstream.release.set()
        await r.read()
    for _ in range(1500):  # bounded (30 s and more): a liveness bound, never a speed measure
        _, after = await _scrape(http, url)
        if _get(after, "localai_authd_streams_in_flight") == 0:
            break
        await asyncio.sleep(0.02)
    assert _get(after, "localai_authd_streams_in_flight") == 0
    assert (
        _get(
            after,
            "localai_authd_requests_total",
            route="generate",
            status_class="2xx",
            key="streamer",
        )
        == 1
    )


async def test_upstream_down_shows(
    observed: tuple[GW, Metrics, str], http: aiohttp.ClientSession
) -> None:
    gw, _, url = observed
    await gw.upstream.stop()
    gw.gateway.own.probe.ttl = 0  # no cached "up" from before the stop
    _, s = await _scrape(http, url)
    assert _get(s, "localai_authd_upstream_up", upstream="/") == 0


async def test_promtool_accepts_the_scrape(
    observed: tuple[GW, Metrics, str], http: aiohttp.ClientSession, tmp_path: Any
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: apt-get install prometheus")
    gw, metrics, url = observed
    key = await gw.key("laptop")
    async with http.get(f"{gw.url}/api/tags", headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
    metrics.observe_tokens("laptop", 10, 20)
    metrics.observe_reload(True)
    text, _ = await _scrape(http, url)
    p = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(p.communicate(text.encode()), 60)
    assert p.returncode == 0, out.decode()
    assert out.decode().strip() == "", out.decode()  # no lint findings either


async def test_only_metrics_path_is_served(
    observed: tuple[GW, Metrics, str], http: aiohttp.ClientSession
) -> None:
    _, _, url = observed
    async with http.get(url.replace("/metrics", "/api/tags")) as r:
        assert r.status == 404


# ---- health and readiness ------------------------------------------------------------------


async def test_health_needs_no_key_and_is_not_audited(gw: GW, http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        async with http.get(f"{gw.url}/localai-authd/health") as r:
            assert r.status == 200
            assert await r.json() == {"status": "ok"}
    async with http.head(f"{gw.url}/localai-authd/health") as r:
        assert r.status == 200
    assert gw.audit() == []
    assert gw.upstream.seen == []


async def test_ready_follows_the_upstream(gw: GW, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gw.url}/localai-authd/ready") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ready"}
    await gw.upstream.stop()
    gw.gateway.own.probe.ttl = 0
    async with http.get(f"{gw.url}/localai-authd/ready") as r:
        assert r.status == 503
        body = await r.read()
    # Nothing a stranger could use: no address, no error text.
    assert body == b'{"status":"not_ready"}'
    assert gw.audit() == []


async def test_ready_probe_is_cached_and_shared() -> None:
    """Ten checks at once and ten more within the TTL cost one connection."""
    accepted = 0

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        w.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    from localai_authd.gateway.health import UpstreamProbe

    probe = UpstreamProbe(ttl=60)
    url = f"http://127.0.0.1:{port}"
    results = await asyncio.gather(*(probe.check(url) for _ in range(10)))
    results += [await probe.check(url) for _ in range(10)]
    assert all(p.up for p in results)
    for _ in range(50):
        await asyncio.sleep(0.01)
    server.close()
    await server.wait_closed()
    assert accepted == 1


async def test_other_own_paths_still_need_a_key(gw: GW, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{gw.url}/localai-authd/health") as r:
        assert r.status == 401
    async with http.get(f"{gw.url}/localai-authd/health?x=1") as r:
        assert r.status == 401
    assert len(gw.audit()) == 2


async def test_a_failing_record_hook_costs_no_audit_record(
    gw: GW, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(rec: dict[str, object], ctx: object) -> None:
        raise RuntimeError("bug")

    gw.gateway.record_hooks.append(broken)
    async with http.get(f"{gw.url}/api/tags") as r:
        assert r.status == 401
    assert [x["status"] for x in gw.audit()] == [401]
    assert "record hook" in caplog.text
