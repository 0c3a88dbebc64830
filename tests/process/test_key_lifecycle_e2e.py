"""suspend / resume / set / delete through a real daemon and the real authctl."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import Daemon
from tests.daemon_harness import status as _status
from tests.fakeupstream import FakeUpstream


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    d = Daemon(upstream.url, tmp_path / "state")
    async with d:
        yield d


async def _generate(url: str, key: str, model: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/api/generate",
            json={"model": model, "stream": False},
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        await r.read()
        return r.status


async def test_suspend_kills_streams_refuses_at_once_and_resumes(
    daemon: Daemon, upstream: FakeUpstream
) -> None:
    key = (await daemon.authctl_json("create", "victim"))["key"]
    upstream.hold_after = 1
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            daemon.url + "/api/generate",
            json={"model": "m"},
            headers={"Authorization": f"Bearer {key}"},
        )
        await asyncio.wait_for(r.content.readany(), 5)
        result = await daemon.authctl_json("suspend", "victim", "--kill-streams")
        assert result["streams_killed"] == 1 and result["state"] == "suspended"
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(r.read(), 5)
        r.close()
    upstream.release.set()
    assert await _status(daemon.url, key) == 401
    await daemon.wait_log('"reason":"suspended"')
    await daemon.authctl("resume", "victim")
    assert await _status(daemon.url, key) == 200


async def test_set_limits_and_delete(daemon: Daemon) -> None:
    key = (await daemon.authctl_json("create", "laptop", "--rpm", "60"))["key"]
    shown = await daemon.authctl_json("set", "laptop", "--tpd", "1000", "--models", "llama3*")
    assert shown["limits"]["requests_per_minute"] == 60
    assert shown["limits"]["tokens_per_day"] == 1000 and shown["models"] == ["llama3*"]
    # the same secret works, and the new model list applies at once
    assert await _generate(daemon.url, key, "llama3") == 200
    assert await _generate(daemon.url, key, "qwen2") == 403
    code, _, err = await daemon.authctl("delete", "laptop", check=False)
    assert code == 4 and "revoke it first" in err
    await daemon.authctl("revoke", "laptop")
    await daemon.authctl("delete", "laptop")
    assert (await daemon.authctl_json("list"))["keys"] == []


async def test_sigkill_during_changes_loses_nothing(tmp_path: Path, upstream: FakeUpstream) -> None:
    """What authctl reported before the crash is what the restarted daemon has."""
    d = Daemon(upstream.url, tmp_path / "state")
    rng = random.Random(11)
    reported: dict[str, dict[str, object]] = {}
    keys: dict[str, str] = {}
    names = ["a", "b", "c"]
    try:
        await d.start()
        for n in names:
            keys[n] = (await d.authctl_json("create", n))["key"]
        for _round in range(2):  # bounded: two crashes
            pending: list[str] = []

            async def change_loop(pending: list[str] = pending) -> None:
                i = 0
                while True:
                    n = names[i % len(names)]
                    i += 1
                    args = (
                        ["set", n, "--rpm", str(i)]
                        if i % 3
                        else ["suspend" if i % 2 else "resume", n]
                    )
                    pending[:] = [n]
                    code, out, _ = await d.authctl("--json", *args, check=False)
                    if code != 0:
                        return  # the daemon is gone
                    doc = json.loads(out)
                    reported[n] = {"rpm": doc["limits"]["requests_per_minute"],
                                   "suspended": doc["suspended"]}  # fmt: skip

            task = asyncio.create_task(change_loop())
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            assert d.proc is not None
            d.proc.kill()  # SIGKILL, mid-change
            await d.proc.wait()
            await asyncio.wait_for(task, 30)
            await d.start()
            for n in names:
                shown = await d.authctl_json("show", n)
                got = {
                    "rpm": shown["limits"]["requests_per_minute"],
                    "suspended": shown["suspended"],
                }
                if n not in pending:  # only the change in flight at the kill may differ
                    assert got == reported.get(n, {"rpm": None, "suspended": False}), n
                reported[n] = got
                want = 401 if got["suspended"] else 200
                assert await _status(d.url, keys[n]) == want, n
    finally:
        await d.stop(signal.SIGTERM)
        d.close()
