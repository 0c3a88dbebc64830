"""[audit] required through the real daemon: 503 while records cannot be written, said once
in the journal when it starts and once when it ends; requests served again afterwards."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream

REFUSING = "refusing new requests with 503"
AGAIN = "audit records are written to"


async def _daemon(tmp_path: Path, upstream: FakeUpstream, audit_file: Path) -> Daemon:
    d = Daemon(
        upstream.url,
        tmp_path / "state",
        config_text=f'[audit]\nfile = "{audit_file}"\nrequired = true\n',
    )
    await d.start()
    return d


async def _status(d: Daemon, key: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(d.url + "/api/tags", headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        body = await r.read()
        if r.status == 503:
            assert json.loads(body) == {"error": "the audit trail cannot be written"}
        return r.status


@pytest.fixture
async def stopper() -> AsyncIterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        try:
            await d.stop()
        finally:
            d.close()


async def test_a_full_disk_turns_requests_away_until_there_is_room(
    tmp_path: Path, upstream: FakeUpstream, small_fs: Path, stopper: list[Daemon]
) -> None:
    audit = small_fs / "audit.jsonl"
    d = await _daemon(tmp_path, upstream, audit)
    stopper.append(d)
    key = (await d.authctl_json("create", "k"))["key"]
    assert await _status(d, key) == 200
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        for _ in range(64):  # bounded: 64 KiB in 1 KiB writes fills 64 KiB
            try:
                f.write(b"x" * 1024)
            except OSError:
                break
    # The audit file's last page may still hold a record or two: the first requests may
    # pass; once a record fails, every new request is refused.
    statuses = [await _status(d, key) for _ in range(40)]
    assert 503 in statuses, statuses
    first = statuses.index(503)
    assert set(statuses[first:]) == {503} and first <= 20
    filler.unlink()
    # The next record (a 503's own) is written; from then on requests are served.
    statuses = [await _status(d, key) for _ in range(2)]
    assert statuses[-1] == 200, statuses
    log = await d.wait_log(AGAIN, 30)
    assert log.count(REFUSING) == 1 and log.count(AGAIN) == 1
    assert "No space left on device" in log
    # No torn record: every line of the file is one whole JSON record (the last one, the
    # 200's, lands just after its answer: wait for it).
    for _ in range(3000):  # bounded (60 s): a liveness bound, never a speed measure
        records = [json.loads(x) for x in audit.read_text().splitlines()]
        if records[-1]["status"] == 200:
            break
        await asyncio.sleep(0.02)
    assert records[-1]["status"] == 200


async def test_a_removed_audit_file_is_created_again_or_refused(
    tmp_path: Path, upstream: FakeUpstream, stopper: list[Daemon]
) -> None:
    logs = tmp_path / "logs"
    audit = logs / "audit.jsonl"
    d = await _daemon(tmp_path, upstream, audit)
    stopper.append(d)
    key = (await d.authctl_json("create", "k"))["key"]
    assert await _status(d, key) == 200

    audit.unlink()  # removed: created again, the record lands in the new file
    assert await _status(d, key) == 200
    await d.wait_log("was removed; created it again", 30)
    assert audit.exists()

    shutil.rmtree(logs)  # removed, and cannot be created: a file where its directory was
    logs.write_text("in the way")
    assert [await _status(d, key) for _ in range(3)] == [503, 503, 503]
    logs.unlink()
    assert await _status(d, key) == 503  # its own record is the first one written again
    assert await _status(d, key) == 200
    log = await d.wait_log(AGAIN, 30)
    assert log.count(REFUSING) == 1 and log.count(AGAIN) == 1


async def test_not_required_keeps_serving_and_says_so_once(
    tmp_path: Path, upstream: FakeUpstream, stopper: list[Daemon]
) -> None:
    logs = tmp_path / "logs"
    d = Daemon(upstream.url, tmp_path / "state", config_text=f'[audit]\nfile = "{logs}/a.jsonl"\n')
    await d.start()
    stopper.append(d)
    key = (await d.authctl_json("create", "k"))["key"]
    shutil.rmtree(logs)
    logs.write_text("in the way")
    # Not required, the file is looked for at most once a second: serve until it is missed.
    for _ in range(600):  # bounded: ~60 s at most (a busy machine is slow, not wrong)
        assert await _status(d, key) == 200
        if "requests are still served" in d.stderr():
            break
        await asyncio.sleep(0.1)
    for _ in range(3):
        assert await _status(d, key) == 200
    log = await d.wait_log("requests are still served", 30)
    assert log.count("cannot write audit records") == 1
