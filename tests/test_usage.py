"""The usage store: counts from audit records, bounded, crash-safe on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from localai_authd import usage as usage_mod
from localai_authd.usage import UsageStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_590_400.0  # 2025-12-01T12:00:00Z

    def __call__(self) -> float:
        return self.now


def rec(kid: str = "k1", **kw: Any) -> dict[str, Any]:
    base = {
        "kind": "request",
        "key_id": kid,
        "key": "laptop",
        "auth": "key",
        "client": "127.0.0.1",
        "bytes_in": 10,
        "bytes_out": 100,
        "tokens_in": 7,
        "tokens_out": 5,
    }
    return {**base, **kw}


def test_counts_only_authenticated_requests(tmp_path: Path) -> None:
    u = UsageStore(tmp_path / "usage.json", Clock())
    u.record(rec(stream=True))
    u.record(rec(client="192.0.2.9", tokens_in=None, tokens_out=None))
    u.record(rec(auth=None))  # a refused credential: not the key's use
    u.record({"kind": "control", "key_id": "k1", "auth": "key"})
    [row] = u.report()
    assert row["requests"] == 2 and row["streams"] == 1
    assert (row["tokens_in"], row["tokens_out"]) == (7, 5)
    assert (row["bytes_in"], row["bytes_out"]) == (20, 200)
    assert row["last_client"] == "192.0.2.9" and row["name"] == "laptop"


def test_since_sums_utc_days(tmp_path: Path) -> None:
    clock = Clock()
    u = UsageStore(tmp_path / "usage.json", clock)
    u.record(rec())
    clock.now += 3 * 86400
    u.record(rec())
    u.record(rec())
    assert u.report()[0]["requests"] == 3
    assert u.report(since=86400)[0]["requests"] == 2
    assert u.report(since=4 * 86400)[0]["requests"] == 3
    assert u.report(since=86400, kid="other") == []


def test_bounded_keys_and_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "MAX_KEYS", 3)
    monkeypatch.setattr(usage_mod, "HISTORY_DAYS", 2)
    clock = Clock()
    u = UsageStore(tmp_path / "usage.json", clock)
    for i in range(5):
        u.record(rec(f"k{i}"))
        clock.now += 86400
    assert list(u.keys) == ["k2", "k3", "k4"]  # least recently used dropped
    assert len(u.days) == 2


def test_survives_a_restart_and_a_torn_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "usage.json"
    u = UsageStore(path, Clock())
    u.record(rec())
    u.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # A crash while writing the next version leaves only a temporary file behind.
    (path.parent / f".usage.json.{os.getpid()}.tmp").write_bytes(b'{"version":1,"ke')
    again = UsageStore(path, Clock())
    again.load()
    assert again.report()[0]["requests"] == 1


def test_an_unreadable_file_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps({"version": 1, "keys": {"k": {"requests": -5}}, "days": {}}))
    u = UsageStore(path, Clock())
    u.load()
    assert u.report() == []
    assert (tmp_path / "usage.json.corrupt").exists()


async def test_flush_writes_only_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    u = UsageStore(path, Clock())
    await u.flush()
    assert not path.exists()
    u.record(rec())
    await u.flush()
    assert json.loads(path.read_text())["keys"]["k1"]["requests"] == 1
    path.unlink()
    await u.flush()
    assert not path.exists()  # nothing new
