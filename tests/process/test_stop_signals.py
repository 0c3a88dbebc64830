"""Stop like people expect: a second SIGINT (Ctrl-C) or SIGTERM during the drain stops at once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGTERM, signal.SIGINT),
    ],
    ids=["INT-INT", "TERM-TERM", "TERM-INT"],
)
async def test_a_second_stop_signal_ends_the_drain_and_says_so(
    tmp_path: Path, upstream: FakeUpstream, first: signal.Signals, second: signal.Signals
) -> None:
    # An hour of drain: only the second signal can end this test in time.
    # No watchdog pings: they could fill the notify queue before STOPPING=1 arrives.
    d = Daemon(
        upstream.url,
        tmp_path / "state",
        env={"WATCHDOG_USEC": "0"},
        config_text='[server]\ndrain_timeout = "1h"\n',
    )
    try:
        await d.start()
        key = (await d.authctl_json("create", "k"))["key"]
        upstream.hold_after = 1  # the upstream holds the stream open until released
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                d.url + "/api/generate",
                json={"model": "llama3"},
                headers={"Authorization": f"Bearer {key}"},
            ) as r,
        ):
            await asyncio.wait_for(r.content.readany(), 60)
            d.send(first)
            await d.wait_for("STOPPING=1", 30)
            await d.wait_log("draining 1 request(s) for up to 3600s", 30)
            assert d.proc is not None and d.proc.returncode is None  # draining, not gone
            d.send(second)
            assert await asyncio.wait_for(d.proc.wait(), 30) == 0
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()  # the held stream was cut, not finished
        log = d.stderr()
        assert f"{second.name} again while draining: stopping now, ending 1 request(s)" in log
        assert "second stop signal: ending 1 request(s) still in flight" in log
        assert "stopped" in log.splitlines()[-1]
    finally:
        d.close()
