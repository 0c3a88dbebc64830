"""The real daemon: [limits] from its config, usage kept across a restart, --check-config."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import VENV_BIN, Daemon
from tests.fakeupstream import FakeUpstream

CONFIG = """
[limits]
requests_per_minute = 3

[connections]
header_timeout = "5s"
"""


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    d = Daemon(upstream.url, tmp_path / "state", config_text=CONFIG)
    yield d
    try:
        await d.stop()
    finally:
        d.close()


async def test_limits_apply_and_usage_survives_a_restart(daemon: Daemon) -> None:
    await daemon.start()
    key = (await daemon.authctl_json("create", "laptop"))["key"]
    h = {"Authorization": f"Bearer {key}"}
    statuses = []
    async with aiohttp.ClientSession() as s:
        for _ in range(4):
            async with s.post(
                daemon.url + "/api/generate", json={"model": "llama3"}, headers=h
            ) as r:
                await r.read()
                statuses.append(r.status)
                retry = r.headers.get("Retry-After")
    assert statuses == [200, 200, 200, 429] and retry is not None and retry.isdigit()
    await daemon.wait_log('"reason":"limit:requests_per_minute"')
    before = await daemon.authctl_json("usage", "laptop")
    [row] = before["keys"]
    # The fake upstream's final chunk reports eval_count 4 (no prompt_eval_count).
    assert (row["requests"], row["streams"], row["tokens_out"]) == (4, 3, 12)
    assert row["last_client"] == "127.0.0.1"
    assert await daemon.stop() == 0
    assert (daemon.state_dir / "usage.json").exists()
    await daemon.start()
    after = await daemon.authctl_json("usage", "--since", "1d")
    assert after["keys"] == before["keys"]
    _, table, _ = await daemon.authctl("usage")
    assert table.splitlines()[0].split()[:3] == ["NAME", "REQUESTS", "TOKENS_IN"]
    assert table.splitlines()[1].split()[:2] == ["laptop", "4"]
    rc, _, err = await daemon.authctl("usage", "nobody", check=False)
    assert rc != 0 and err.startswith("authctl: ")


async def test_a_silent_connection_is_closed_by_the_daemon(daemon: Daemon) -> None:
    await daemon.start()
    r, w = await asyncio.open_connection("127.0.0.1", daemon.port)
    try:
        async with asyncio.timeout(30):
            assert await r.read() == b""
    finally:
        w.close()


def test_check_config_reports_every_bad_limit(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[limits]\nrequests_per_minute = -1\nmax_keep_alive = -1\nover_cap = "drop"\n'
        'failed_auth_per_minute = 0\n[connections]\nheader_timeout = "2h"\n'
        "max_per_source = 10\nmax_total = 5\n"
    )
    p = subprocess.run(
        [str(VENV_BIN / "localai-authd"), "--check-config", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 78
    for needle in (
        "[limits] requests_per_minute",
        "[limits] max_keep_alive",
        "[limits] over_cap",
        "[limits] failed_auth_per_minute",
        "[connections] header_timeout",
        "max_per_source is larger than max_total",
    ):
        assert needle in p.stderr, p.stderr


async def test_reload_applies_new_limits(daemon: Daemon) -> None:
    await daemon.start()
    key = (await daemon.authctl_json("create", "laptop"))["key"]
    h = {"Authorization": f"Bearer {key}"}

    async def statuses(n: int) -> list[int]:
        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                async with s.get(daemon.url + "/api/tags", headers=h) as r:
                    out.append(r.status)
        return out

    assert await statuses(4) == [200, 200, 200, 429]
    daemon.config_path.write_text(CONFIG.replace("requests_per_minute = 3", "max_num_ctx = 8"))
    assert (await daemon.authctl_json("reload"))["reloaded"] is True
    assert await statuses(5) == [200] * 5
