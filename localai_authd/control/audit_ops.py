"""The control operation that reads the audit trail (``authctl audit``).

Filters as in :mod:`localai_authd.auditlog`. Without a cursor it answers the last ``limit``
matching records of the live and rotated files, with a cursor at the live file's end; with
a cursor it answers what was written since, waiting up to ``wait`` seconds (at most
:data:`MAX_WAIT`, so a follower holds the control server's shutdown back no longer than that)
for something to show. File reading runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .. import auditlog
from ..durations import parse_duration
from ..errors import UsageError
from .context import ControlContext

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
MAX_WAIT = 5.0
POLL = 0.25
FIELDS = frozenset({"key", "since", "status", "limit", "cursor", "wait"})


class Call(Protocol):
    """What this operation reads of handlers.Call (named here: handlers imports this module)."""

    @property
    def ctx(self) -> ControlContext: ...
    @property
    def peer_uid(self) -> int: ...
    @property
    def body(self) -> Mapping[str, Any]: ...


def _filter(body: Mapping[str, Any], peer_uid: int) -> auditlog.Filter:
    key, since, status = body.get("key"), body.get("since"), body.get("status")
    if key is not None and not isinstance(key, str):
        raise UsageError("field 'key' must be a string")
    since_t = None
    if since is not None:
        if not isinstance(since, str | int | float) or isinstance(since, bool):
            raise UsageError("field 'since' must be a duration like \"1h\"")
        try:
            since_t = time.time() - parse_duration(since)
        except ValueError as e:
            raise UsageError(f"field 'since': {e}") from e
    if status is not None and not isinstance(status, str):
        raise UsageError('field \'status\' must be a string like "4xx" or "401,5xx"')
    try:
        return auditlog.Filter(
            key=key,
            since=since_t,
            status=auditlog.parse_status(status),
            # a follower through this socket would otherwise be shown its own polls
            skip_own_reads_of=peer_uid if body.get("cursor") is not None else None,
        )
    except ValueError as e:
        raise UsageError(f"field 'status': {e}") from e


def _number(body: Mapping[str, Any], field: str, default: float, top: float) -> float:
    v = body.get(field, default)
    if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= top:
        raise UsageError(f"field {field!r} must be a number from 0 to {top:g}")
    return float(v)


async def read_audit(call: Call) -> tuple[int, dict[str, Any]]:
    path = call.ctx.audit.path
    if path is None:
        raise UsageError('the daemon keeps no audit file ([audit] file = "-"): see its journal')
    flt = _filter(call.body, call.peer_uid)
    limit = int(_number(call.body, "limit", DEFAULT_LIMIT, MAX_LIMIT))
    wait = _number(call.body, "wait", 0, MAX_WAIT)
    stats = auditlog.Stats()
    if call.body.get("cursor") is None:
        records, cursor = await asyncio.to_thread(_everything, path, flt, limit, stats)
    else:
        try:
            cursor = auditlog.Cursor.from_json(call.body["cursor"])
        except ValueError as e:
            raise UsageError(str(e)) from e
        deadline = time.monotonic() + wait
        while True:
            records, cursor = await asyncio.to_thread(auditlog.read_new, path, cursor, flt, stats)
            if records or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        records = records[-limit:] if limit else []
    return 200, {
        "file": str(path),
        "records": records,
        "cursor": cursor.to_json(),
        "skipped_lines": stats.skipped,
    }


def _everything(
    path: Path, flt: auditlog.Filter, limit: int, stats: auditlog.Stats
) -> tuple[list[dict[str, Any]], auditlog.Cursor]:
    # The cursor first: a record written meanwhile may show twice, but is never lost.
    cursor = auditlog.end_cursor(path)
    return auditlog.read(path, flt, limit, stats), cursor
