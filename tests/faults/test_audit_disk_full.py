"""The audit file's filesystem fills up: a real 64 KiB tmpfs, filled for real."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.fakeupstream import FakeUpstream

from .conftest import BASE_CONFIG, Running, StartDaemon, fill


async def _bad_key_status(d: Running) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(d.url + "/api/tags", headers={"Authorization": "Bearer nope"}) as r,
    ):
        return r.status


async def test_a_full_audit_disk_does_not_stop_the_service_and_the_log_says_so(
    start_daemon: StartDaemon, upstream: FakeUpstream, small_fs: Path
) -> None:
    audit = small_fs / "audit.jsonl"
    d = await start_daemon(
        upstream.url, BASE_CONFIG + f'\n[audit]\nfile = "{audit}"\n', audit_file=audit
    )
    assert await d.status() == 200
    filler = fill(small_fs)

    # Served as before, refusals included: no request turns into a 500 or a cut stream.
    # (The audit file's last page may take a few more records: 30 requests are more.)
    for _ in range(10):
        assert await d.status() == 200
        await d.stream(upstream)
        assert await _bad_key_status(d) == 401
    log = await d.d.wait_log("No space left on device")
    assert f"cannot write audit records to {audit}" in log
    # Every record still reached the journal ([audit] log is on by default).
    assert log.count('"kind":"request"') >= 31

    filler.unlink()  # room again: records reach the file again, whole
    assert await d.status() == 200
    last = await d.wait_records(lambda r: r["status"] == 200, count=2)
    assert last, "no record reached the file once there was room"
    for line in audit.read_text().splitlines():
        json.loads(line)  # no torn line from the writes that failed


async def test_with_audit_required_a_full_disk_turns_requests_away_with_503(
    start_daemon: StartDaemon, upstream: FakeUpstream, small_fs: Path
) -> None:
    audit = small_fs / "audit.jsonl"
    config = BASE_CONFIG + f'\n[audit]\nfile = "{audit}"\nrequired = true\n'
    d = await start_daemon(upstream.url, config, audit_file=audit)
    assert await d.status() == 200
    filler = fill(small_fs)
    # The audit file's last page may still take a few records (about ten fit in 4 KiB);
    # the request whose record fails is served (its answer was already on its way); from
    # then on nothing is served unaudited.
    statuses = [await d.status() for _ in range(30)]
    assert 503 in statuses, statuses
    first = statuses.index(503)
    assert first <= 15 and set(statuses[first:]) == {503}, statuses
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/api/generate", json={"model": "llama3"}, headers=_h(d.key)) as r,
    ):
        assert r.status == 503
        assert "audit" in (await r.json())["error"]
    log = await d.d.wait_log("refusing new requests with 503")
    assert "No space left on device" in log

    filler.unlink()
    statuses = [await d.status() for _ in range(3)]
    assert statuses[-1] == 200, statuses
    await d.stream(upstream)
    assert await d.wait_records(lambda r: r["status"] == 503), "the 503s were not audited"


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
