"""The real daemon: no credential in its journal (stderr) or audit file, whatever the request.

The same generated variants as tests/gateway/test_leaks.py, sent to the process with its
log at debug level (aiohttp logs the most there).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import raw_request, status_of
from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream
from tests.gateway.test_leaks import ERRORS, PLACES, _needles


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    d = Daemon(upstream.url, tmp_path / "state", config_text='[log]\nlevel = "debug"\n')
    async with d:
        yield d


async def test_no_credential_in_the_journal_or_the_audit_file(
    daemon: Daemon, upstream: FakeUpstream
) -> None:
    ka = (await daemon.authctl_json("create", "authorizing"))["key"]
    leaked = (await daemon.authctl_json("create", "leaked"))["key"]
    needles: set[bytes] = {ka.encode()}
    sent = 0
    for error in ("ok", "401-none", "403-scope", "404-route", "parser-cr-in-value"):
        for place in PLACES:
            req = ERRORS[error](ka)
            placed = PLACES[place](req, leaked)
            needles.update(_needles(leaked, placed))
            resp = await raw_request(daemon.port, req.bytes())
            sent += 1
            for n in needles:
                assert n not in resp, (error, place, n)
            if error != "ok":
                assert status_of(resp) >= 400
    assert await daemon.stop() == 0
    journal = daemon.stderr().encode()
    audit = (daemon.state_dir / "audit.jsonl").read_bytes()
    records = [json.loads(line) for line in audit.splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    # Every request is accounted for: one record each, or counted in a summary (the
    # per-source cap on parser refusals applies to this flood too).
    suppressed = sum(r.get("suppressed", 0) for r in requests)
    assert len(requests) - (suppressed > 0) + suppressed >= sent
    assert b"http_parse_error:" in audit  # the parser's refusals are there too
    assert b"credential_in_url" in audit and b"credential_in_header" in audit
    seen = repr(upstream.seen).encode() + b"".join(s.body for s in upstream.seen)
    for n in needles:
        assert n not in journal, n
        assert n not in audit, n
        if n != ka.encode():
            assert n not in seen, n
