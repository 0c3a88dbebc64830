"""The journal copy of audit records: written directly (no LogRecord) only where that gives
the very bytes logging would write, and the usual way everywhere else."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from localai_authd.audit import Audit
from localai_authd.gateway import logscrub
from localai_authd.keys import format as keyformat
from localai_authd.logsetup import LineHandler, direct_line
from localai_authd.redact import REDACTED

AUDIT = logging.getLogger("localai_authd.audit")


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger with its handlers, level and the audit logger's filters restored.
    (pytest adds its own capturing handlers when the test body starts: _install clears
    them again.)"""
    r = logging.getLogger()
    saved = (r.handlers[:], r.level, AUDIT.filters[:], AUDIT.handlers[:], AUDIT.propagate)
    r.handlers.clear()
    AUDIT.filters.clear()
    AUDIT.handlers.clear()
    try:
        yield r
    finally:
        r.handlers[:], AUDIT.filters[:], AUDIT.handlers[:] = saved[0], saved[2], saved[3]
        r.setLevel(saved[1])
        AUDIT.propagate = saved[4]


def _install(root: logging.Logger, with_time: bool) -> tuple[LineHandler, io.StringIO]:
    out = io.StringIO()
    h = LineHandler(out, with_time)
    root.handlers[:] = [h]
    root.setLevel(logging.INFO)
    logscrub.install()
    return h, out


@pytest.mark.parametrize("with_time", [False, True])
@pytest.mark.parametrize("at", [1_700_000_000.0, 1_700_000_000.999, 1_700_000_059.5004])
def test_the_direct_line_is_the_line_logging_writes(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch, with_time: bool, at: float
) -> None:
    h, out = _install(root, with_time)
    monkeypatch.setattr(time, "time", lambda: at)
    text = '{"kind":"request","path":"/api/generate","status":200}'
    AUDIT.info("%s", text)  # the usual way: LogRecord, filters, formatter
    assert direct_line(AUDIT) is h
    assert h.write_line(AUDIT.name, text)
    usual, direct = out.getvalue().splitlines()
    assert direct == usual
    assert usual.endswith(f"INFO localai_authd.audit: {text}")
    assert usual.startswith(time.strftime("%Y-%m-%d", time.localtime(at))) == with_time


def test_audit_records_reach_the_log_redacted_on_the_direct_path(root: logging.Logger) -> None:
    _, out = _install(root, with_time=False)
    key = keyformat.mint(keyformat.new_kid())
    audit = Audit(None, to_log=True)
    audit.write({"kind": "control", "action": "create", "name": key, "status": 200})
    line = out.getvalue()
    assert line.startswith('INFO localai_authd.audit: {"time":')
    assert key not in line and REDACTED in line and '"status":200' in line


def test_anything_else_in_the_way_means_the_usual_path(root: logging.Logger) -> None:
    h, out = _install(root, with_time=False)
    assert direct_line(AUDIT) is h
    captured = io.StringIO()
    capture = logging.StreamHandler(captured)  # a second handler (a test's log capture)
    root.addHandler(capture)
    assert direct_line(AUDIT) is None
    Audit(None, to_log=True).write({"kind": "request", "status": 201})
    assert '"status":201' in captured.getvalue() and '"status":201' in out.getvalue()
    root.removeHandler(capture)
    root.setLevel(logging.WARNING)  # [log] level = "warning": no audit lines in the journal
    assert direct_line(AUDIT) is None
    Audit(None, to_log=True).write({"kind": "request", "status": 202})
    assert '"status":202' not in out.getvalue()
    root.setLevel(logging.INFO)
    AUDIT.addFilter(lambda r: False)  # someone's filter: only logging can apply it
    assert direct_line(AUDIT) is None
    Audit(None, to_log=True).write({"kind": "request", "status": 203})
    assert '"status":203' not in out.getvalue()


def test_a_broken_stream_falls_back_to_logging_and_never_fails_the_request(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, out = _install(root, with_time=False)
    out.close()  # stderr gone: write() raises
    reported: list[str] = []
    monkeypatch.setattr(h, "handleError", lambda record: reported.append(record.getMessage()))
    Audit(None, to_log=True).write({"kind": "request", "status": 204})  # does not raise
    assert len(reported) == 1 and '"status":204' in reported[0]


@pytest.mark.parametrize("between", ["handler", "no-propagate"])
def test_a_logger_between_the_audit_logger_and_the_root_means_the_usual_path(
    root: logging.Logger, between: str
) -> None:
    """The audit logger's parent ("localai_authd") is on a record's way to the root too: its
    handlers get the record, and with propagate off the root's handler never does. The
    direct line must not skip the one nor reach the other."""
    h, out = _install(root, with_time=False)
    parent = logging.getLogger("localai_authd")
    saved = (parent.handlers[:], parent.propagate)
    captured = io.StringIO()
    try:
        if between == "handler":
            parent.addHandler(logging.StreamHandler(captured))
        else:
            parent.propagate = False
        assert direct_line(AUDIT) is None
        Audit(None, to_log=True).write({"kind": "request", "status": 205})
        if between == "handler":
            assert '"status":205' in captured.getvalue() and '"status":205' in out.getvalue()
        else:
            assert '"status":205' not in out.getvalue()
    finally:
        parent.handlers[:], parent.propagate = saved
    assert direct_line(AUDIT) is h
