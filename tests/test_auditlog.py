"""Reading the audit trail from real files: rotated (plain, gzip, dateext), filtered, followed."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from localai_authd.audit import Audit
from localai_authd.auditlog import (
    Cursor,
    Filter,
    Stats,
    audit_files,
    end_cursor,
    iso,
    parse_status,
    read,
    read_new,
)


def _line(n: int, **kw: Any) -> str:
    rec = {"time": iso(1_700_000_000 + n), "kind": "request", "n": n, "status": 200, **kw}
    return json.dumps(rec) + "\n"


def _write_rotated(d: Path) -> Path:
    live = d / "audit.jsonl"
    with gzip.open(d / "audit.jsonl.3.gz", "wt") as f:
        f.write(_line(1) + _line(2, key="old"))
    with gzip.open(d / "audit.jsonl.2.gz", "wt") as f:
        f.write(_line(3))
    (d / "audit.jsonl.1").write_text(_line(4, status=401, key_id="abcd") + "not json\n")
    live.write_text(_line(5, key="laptop", status=503) + _line(6, key="laptop"))
    (d / "audit.jsonl.bak").write_text(_line(99))  # not logrotate's: ignored
    (d / "other.jsonl.1").write_text(_line(98))
    return live


def test_files_in_order_oldest_first(tmp_path: Path) -> None:
    live = _write_rotated(tmp_path)
    assert [p.name for p in audit_files(live)] == [
        "audit.jsonl.3.gz",
        "audit.jsonl.2.gz",
        "audit.jsonl.1",
        "audit.jsonl",
    ]
    stats = Stats()
    assert [r["n"] for r in read(live, Filter(), stats=stats)] == [1, 2, 3, 4, 5, 6]
    assert stats.skipped == 1


def test_dateext_names(tmp_path: Path) -> None:
    live = tmp_path / "audit.jsonl"
    with gzip.open(tmp_path / "audit.jsonl-20261129.gz", "wt") as f:
        f.write(_line(1))
    (tmp_path / "audit.jsonl-20261130").write_text(_line(2))
    live.write_text(_line(3))
    assert [r["n"] for r in read(live, Filter())] == [1, 2, 3]


def test_filters(tmp_path: Path) -> None:
    live = _write_rotated(tmp_path)
    assert [r["n"] for r in read(live, Filter(key="laptop"))] == [5, 6]
    assert [r["n"] for r in read(live, Filter(key="abcd"))] == [4]  # by key id too
    assert [r["n"] for r in read(live, Filter(status=("4xx",)))] == [4]
    assert [r["n"] for r in read(live, Filter(status=parse_status("401,5xx")))] == [4, 5]
    # since: by the records' own time; older rotated files are skipped by their mtime
    assert [r["n"] for r in read(live, Filter(since=1_700_000_004))] == [4, 5, 6]
    assert [r["n"] for r in read(live, Filter(), limit=2)] == [5, 6]
    with pytest.raises(ValueError, match="4xx"):
        Filter(status=("abc",))


def test_since_skips_files_last_written_before(tmp_path: Path) -> None:
    live = _write_rotated(tmp_path)
    old = time.time() - 7200
    os.utime(tmp_path / "audit.jsonl.3.gz", (old, old))
    # a record inside claims to be new, but the file was last written 2 h ago: not read
    with gzip.open(tmp_path / "audit.jsonl.3.gz", "wt") as f:
        f.write(_line(10**9))
    os.utime(tmp_path / "audit.jsonl.3.gz", (old, old))
    assert read(live, Filter(since=time.time() - 3600)) == []


def test_follow_across_rotation_and_copytruncate(tmp_path: Path) -> None:
    live = tmp_path / "audit.jsonl"
    audit = Audit(live, to_log=False)
    audit.write({"kind": "request", "n": 1})
    cur = end_cursor(live)
    got, cur = read_new(live, cur, Filter())
    assert got == []
    audit.write({"kind": "request", "n": 2})
    with open(live, "a") as f:
        f.write('{"kind": "request", "n": 3')  # half a line: not yet
    got, cur = read_new(live, cur, Filter())
    assert [r["n"] for r in got] == [2]
    with open(live, "a") as f:
        f.write("}\n")
    audit.write({"kind": "request", "n": 4})
    # logrotate (create mode): rename, then the daemon reopens on SIGHUP
    live.rename(tmp_path / "audit.jsonl.1")
    audit.write({"kind": "request", "n": 5})  # still into the renamed file
    audit.prepare(audit.path, audit.to_log, audit.required).commit()  # as a reload does
    audit.write({"kind": "request", "n": 6})
    got, cur = read_new(live, cur, Filter())
    assert [r["n"] for r in got] == [3, 4, 5, 6]
    # copytruncate: same inode, emptied
    audit.close()
    os.truncate(live, 0)
    audit.prepare(audit.path, audit.to_log, audit.required).commit()  # as a reload does
    audit.write({"kind": "request", "n": 7})
    got, cur = read_new(live, cur, Filter())
    assert [r["n"] for r in got] == [7]
    audit.close()


def test_follow_hides_the_followers_own_reads(tmp_path: Path) -> None:
    live = tmp_path / "audit.jsonl"
    live.write_text("")
    cur = end_cursor(live)
    with open(live, "a") as f:
        f.write(json.dumps({"kind": "control", "action": "audit", "peer_uid": 5}) + "\n")
        f.write(json.dumps({"kind": "control", "action": "audit", "peer_uid": 6}) + "\n")
    got, _ = read_new(live, cur, Filter(skip_own_reads_of=5))
    assert [r["peer_uid"] for r in got] == [6]


def test_cursor_json_is_checked() -> None:
    assert Cursor.from_json({"inode": 3, "offset": 4}) == Cursor(3, 4)
    for bad in (None, {"inode": "x", "offset": 1}, {"inode": 1, "offset": -1}):
        with pytest.raises(ValueError):
            Cursor.from_json(bad)
