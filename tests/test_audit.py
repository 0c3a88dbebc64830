"""The audit file: reopened new-before-old on reload; removal and write failures tracked."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from localai_authd.audit import Audit


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_prepare_opens_the_new_file_and_changes_nothing_until_commit(tmp_path: Path) -> None:
    old, new = tmp_path / "a" / "old.jsonl", tmp_path / "b" / "new.jsonl"
    audit = Audit(old, to_log=False)
    prepared = audit.prepare(new, to_log=False, required=True)
    assert new.exists()  # opened (created) already
    audit.write({"n": 1})
    assert audit.path == old and not audit.required
    prepared.commit()
    audit.write({"n": 2})
    assert [r["n"] for r in _lines(old)] == [1] and [r["n"] for r in _lines(new)] == [2]
    assert audit.path == new and audit.required
    audit.close()


def test_abort_closes_the_new_file_and_keeps_the_old(tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    audit = Audit(old, to_log=False)
    audit.prepare(tmp_path / "new.jsonl", False, False).abort()
    audit.write({"n": 1})
    assert [r["n"] for r in _lines(old)] == [1]
    audit.close()


def test_a_removed_file_is_created_again_and_no_record_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = Audit(path, to_log=False, required=True)
    audit.write({"n": 1})
    path.unlink()
    with caplog.at_level(logging.WARNING, "localai_authd.audit"):
        audit.write({"n": 2})
    assert [r["n"] for r in _lines(path)] == [2]
    assert "was removed; created it again" in caplog.text
    assert audit.writable and not audit.refusing
    audit.close()


def test_records_that_cannot_be_written_make_a_required_trail_refuse_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logdir = tmp_path / "logs"
    path = logdir / "audit.jsonl"
    audit = Audit(path, to_log=False, required=True)
    # Removed with its directory, and a file where the directory was: it cannot be created.
    shutil.rmtree(logdir)
    logdir.write_text("not a directory")
    with caplog.at_level(logging.WARNING, "localai_authd.audit"):
        for n in range(3):
            audit.write({"n": n})
        assert not audit.writable and audit.refusing
        assert caplog.text.count("cannot write audit records") == 1
        assert "refusing new requests with 503" in caplog.text
        logdir.unlink()
        audit.write({"n": 9})
    assert audit.writable and not audit.refusing
    assert caplog.text.count("audit records are written to") == 1
    assert [r["n"] for r in _lines(path)] == [9]
    audit.close()


def test_not_required_keeps_serving_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logdir = tmp_path / "logs"
    audit = Audit(logdir / "audit.jsonl", to_log=False, required=False, check_interval=0)
    shutil.rmtree(logdir)
    logdir.write_text("x")
    with caplog.at_level(logging.WARNING, "localai_authd.audit"):
        audit.write({"n": 1})
    assert not audit.writable and not audit.refusing
    assert "requests are still served ([audit] required = false)" in caplog.text
    audit.close()
