"""`POST /v1/audit` over the real control socket: filters, rotated files, follow by cursor."""

from __future__ import annotations

import asyncio
import gzip
import json
import os

from tests.control.conftest import Control
from tests.control.wire import http


async def test_reads_filters_and_rotated_files(control: Control) -> None:
    audit = control.ctx.audit
    audit.write({"kind": "request", "key": "laptop", "status": 200, "n": 1})
    audit.write({"kind": "request", "key": "ci", "status": 401, "n": 2})
    audit.close()
    path = control.audit_path
    with gzip.open(path.with_name("audit.jsonl.2.gz"), "wt") as f:
        f.write(json.dumps({"kind": "request", "key": "laptop", "status": 503, "n": 0}) + "\n")
    path.rename(path.with_name("audit.jsonl.1"))
    audit.prepare(audit.path, audit.to_log, audit.required).commit()  # as a reload does
    audit.write({"kind": "request", "key": "laptop", "status": 404, "n": 3})

    r = await http(control.sock, "POST", "/v1/audit", {"key": "laptop"})
    assert r.status == 200, r.body
    assert [x.get("n") for x in r.doc["records"]] == [0, 1, 3]
    assert r.doc["file"] == str(path)
    r = await http(control.sock, "POST", "/v1/audit", {"status": "4xx"})
    assert [x.get("n") for x in r.doc["records"]] == [2, 3]
    r = await http(control.sock, "POST", "/v1/audit", {"status": "5xx,401", "limit": 1})
    assert [x.get("n") for x in r.doc["records"]] == [2]
    # the reads themselves are audited as control actions
    assert [x["action"] for x in control.audit() if x.get("kind") == "control"] == ["audit"] * 3


async def test_bad_fields_are_usage_errors(control: Control) -> None:
    for body in (
        {"status": "abc"},
        {"since": "soon"},
        {"limit": -1},
        {"wait": 60},
        {"cursor": {"inode": "x"}},
        {"grep": "x"},
    ):
        r = await http(control.sock, "POST", "/v1/audit", body)
        assert r.status == 400, (body, r.body)


async def test_follow_by_cursor(control: Control) -> None:
    control.ctx.audit.write({"kind": "request", "key": "laptop", "status": 200, "n": 1})
    first = await http(control.sock, "POST", "/v1/audit", {"limit": 0})
    assert first.doc["records"] == []
    cursor = first.doc["cursor"]

    async def later() -> None:
        await asyncio.sleep(0.3)
        control.ctx.audit.write({"kind": "request", "key": "laptop", "status": 200, "n": 2})

    task = asyncio.create_task(later())
    r = await http(control.sock, "POST", "/v1/audit", {"cursor": cursor, "wait": 5})
    await task
    # the record written while waiting; not the follower's own "audit" control records
    assert [x.get("n") for x in r.doc["records"]] == [2]
    r2 = await http(control.sock, "POST", "/v1/audit", {"cursor": r.doc["cursor"], "wait": 0})
    assert r2.doc["records"] == []
    assert os.getuid() == control.audit()[-1]["peer_uid"]
