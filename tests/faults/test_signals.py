"""Signals while streams run: SIGTERM with 50 streams in flight (20 runs), ten SIGHUPs."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from localai_authd.durations import parse_duration
from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream

from .conftest import BASE_CONFIG, SOON, bearer, signal_and_mark

UNIT = Path(__file__).parents[2] / "packaging" / "systemd" / "localai-authd.service"
STREAMS = 50
RUNS = 20


def timeout_stop_sec() -> float:
    """What systemd gives the daemon between SIGTERM and SIGKILL, from the unit we ship."""
    found = re.findall(r"^TimeoutStopSec=(.+)$", UNIT.read_text(), re.MULTILINE)
    assert len(found) == 1, f"{UNIT}: expected one TimeoutStopSec=, found {found}"
    return parse_duration(found[0].strip())


async def _open_streams(
    s: aiohttp.ClientSession, d: Daemon, key: str, n: int
) -> list[tuple[aiohttp.ClientResponse, bytes]]:
    """``n`` streams, each with its first chunk in hand (the upstream holds the rest)."""

    async def one() -> tuple[aiohttp.ClientResponse, bytes]:
        r = await s.post(d.url + "/api/generate", json={"model": "llama3"}, headers=bearer(key))
        assert r.status == 200
        return r, await asyncio.wait_for(r.content.readany(), SOON)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def _records(d: Daemon) -> list[str]:
    path = d.state_dir / "audit.jsonl"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
async def test_sigterm_with_50_streams_exits_cleanly_in_time_20_runs(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Even runs: the upstream finishes during the drain, every stream completes whole.
    Odd runs: it does not; the drain timeout (1 s) cuts every stream, as an error."""
    stop_sec = timeout_stop_sec()
    full = upstream.stream_bytes("ndjson")
    d = Daemon(upstream.url, tmp_path / "state")
    key = ""
    loop = asyncio.get_running_loop()
    try:
        for run in range(RUNS):
            finish = run % 2 == 0
            drain = "30s" if finish else "1s"  # 30 s: the config's default, under the unit's
            d.config_text = BASE_CONFIG.replace(
                'drain_timeout = "1s"', f'drain_timeout = "{drain}"'
            )
            await d.start()
            if not key:
                key = (await d.authctl_json("create", "k"))["key"]
            upstream.hold_after = 1
            upstream.release = asyncio.Event()
            seen_before = len(upstream.seen)
            records_before = len(_records(d))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                streams = await _open_streams(s, d, key, STREAMS)
                mark = signal_and_mark(d, signal.SIGTERM)
                sent = loop.time()
                await d.wait_for("STOPPING=1", SOON, after=mark)
                if finish:
                    upstream.release.set()
                    for r, first in streams:
                        assert first + await asyncio.wait_for(r.read(), SOON) == full, run
                else:
                    for r, _ in streams:
                        with pytest.raises(aiohttp.ClientPayloadError):
                            await asyncio.wait_for(r.read(), SOON)
                    assert len(upstream.seen) - seen_before == STREAMS
                    for seen in upstream.seen[seen_before:]:
                        await asyncio.wait_for(seen.cancelled.wait(), SOON)
                assert d.proc is not None
                # The bound is the point here: systemd kills the daemon after TimeoutStopSec.
                code = await asyncio.wait_for(d.proc.wait(), stop_sec - (loop.time() - sent))
            assert code == 0, (run, d.stderr()[-2000:])
            outcomes = [
                '"outcome":"ok"' in x or '"outcome":"killed"' in x
                for x in _records(d)[records_before:]
                if '"path":"/api/generate"' in x
            ]
            assert len(outcomes) == STREAMS and all(outcomes), run
            want = '"outcome":"ok"' if finish else '"outcome":"killed"'
            assert sum(want in x for x in _records(d)[records_before:]) == STREAMS, run
            if not finish:
                assert f"drain timeout: ending {STREAMS} request(s)" in d.stderr()
    finally:
        upstream.release.set()
        d.close()


async def test_ten_sighups_while_streams_run_drop_none(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    full = upstream.stream_bytes("ndjson")
    configs = [BASE_CONFIG, BASE_CONFIG + '\n[log]\nlevel = "warning"\n']
    d = Daemon(upstream.url, tmp_path / "state", config_text=configs[0])
    try:
        await d.start()
        key = (await d.authctl_json("create", "k"))["key"]
        upstream.hold_after = 1
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            streams = await _open_streams(s, d, key, 10)
            for i in range(10):
                # A config that differs each time, so every reload really swaps something.
                d.config_path.write_text(configs[(i + 1) % 2])
                mark = signal_and_mark(d, signal.SIGHUP)
                reloading = await d.wait_for("RELOADING=1", SOON, after=mark)
                await d.wait_for("READY=1", SOON, after=reloading)
                streams += await _open_streams(s, d, key, 2)  # started between reloads
            upstream.release.set()
            for r, first in streams:
                assert r.status == 200
                assert first + await asyncio.wait_for(r.read(), SOON) == full
        assert len(streams) == 30
        # One whole record per stream, though the audit file was reopened ten times (the
        # last records land just after their streams end: poll for them).
        async with asyncio.timeout(SOON):
            while len(recs := [x for x in _records(d) if '"path":"/api/generate"' in x]) < 30:
                await asyncio.sleep(0.05)
        assert len(recs) == 30 and all('"outcome":"ok"' in x for x in recs)
        assert d.stderr().count("reload refused") == 0
        assert await d.stop() == 0
    finally:
        upstream.release.set()
        d.close()
