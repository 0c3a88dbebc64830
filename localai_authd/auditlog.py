"""Reading the audit trail: the live file and the ones logrotate moved aside. Pure (stdlib).

logrotate names rotated files ``audit.jsonl.1``, ``audit.jsonl.2.gz``, ... (the highest
number is the oldest) or, with ``dateext``, ``audit.jsonl-20261201[.gz]``. They are read
oldest first and the live file last, so records come out in the order they were written.

Filters: key (name or key id, on request and control records alike), since (records at or
after a time), status (``4xx``, ``401``, or several: ``401,5xx``). Lines that are not JSON
objects (a line cut by a full disk) are skipped and counted, never fatal.

Following: a :class:`Cursor` is the live file's inode and the offset after its last whole
line. :func:`read_new` goes on from there, also across a rotation (the old inode is found
among the rotated files and finished first) and a ``copytruncate`` (the file got shorter).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_NUMBERED = re.compile(r"\.(\d{1,4})(\.gz)?")
_DATED = re.compile(r"-(\d{8,10})(\.gz)?")
_STATUS = re.compile(r"[1-5](xx|\d\d)")
MAX_LINE = 1024 * 1024  # an audit line is far smaller; anything longer is not ours


def iso(t: float) -> str:
    """The audit records' own time format (audit.py), so times compare as strings."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def audit_files(live: Path) -> list[Path]:
    """The rotated files next to ``live``, oldest first, then ``live`` itself."""
    numbered: list[tuple[int, Path]] = []
    dated: list[tuple[str, Path]] = []
    try:
        names = os.listdir(live.parent)
    except OSError:
        names = []
    for name in names:
        if not name.startswith(live.name) or name == live.name:
            continue
        rest = name[len(live.name) :]
        if m := _NUMBERED.fullmatch(rest):
            numbered.append((int(m.group(1)), live.parent / name))
        elif m := _DATED.fullmatch(rest):
            dated.append((m.group(1), live.parent / name))
    # dateext files are older than numbered ones only by convention; both styles at once
    # would be a changed logrotate config, where dates are the better guide: dated first.
    ordered = [p for _, p in sorted(dated)] + [p for _, p in sorted(numbered, reverse=True)]
    return [*ordered, live]


@dataclass(frozen=True)
class Filter:
    key: str | None = None
    since: float | None = None  # epoch seconds
    status: tuple[str, ...] = ()  # "4xx" or "401"
    skip_own_reads_of: int | None = None  # a follower's uid: hide its own "audit" calls

    def __post_init__(self) -> None:
        for s in self.status:
            if not _STATUS.fullmatch(s):
                raise ValueError(f"status must look like 4xx or 401, got {s!r}")

    @property
    def since_iso(self) -> str | None:
        return iso(self.since) if self.since is not None else None

    def matches(self, rec: dict[str, Any], since_iso: str | None = None) -> bool:
        if since_iso is not None and str(rec.get("time", "")) < since_iso:
            return False
        if self.key is not None and self.key not in (
            rec.get("key"),
            rec.get("key_id"),
            rec.get("name"),
            rec.get("kid"),
        ):
            return False
        if self.status:
            st = str(rec.get("status", ""))
            if not any(st == s or (s.endswith("xx") and st[:1] == s[0]) for s in self.status):
                return False
        return not (
            self.skip_own_reads_of is not None
            and rec.get("kind") == "control"
            and rec.get("action") == "audit"
            and rec.get("peer_uid") == self.skip_own_reads_of
        )


def parse_status(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(s.strip().lower() for s in value.split(",") if s.strip())


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a BufferedIOBase
    return open(path, "rb")


@dataclass
class Stats:
    skipped: int = 0  # lines that were not JSON objects


def _records(lines: Iterable[bytes], stats: Stats) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line) if len(line) <= MAX_LINE else None
        except (ValueError, RecursionError):
            rec = None
        if isinstance(rec, dict):
            yield rec
        else:
            stats.skipped += 1


def read(
    live: Path, flt: Filter, limit: int | None = None, stats: Stats | None = None
) -> list[dict[str, Any]]:
    """Matching records from all files, oldest first; with ``limit``, only the last ones."""
    stats = stats if stats is not None else Stats()
    out: deque[dict[str, Any]] = deque(maxlen=limit)
    since_iso = flt.since_iso
    for path in audit_files(live):
        try:
            if flt.since is not None and path != live and os.stat(path).st_mtime < flt.since:
                continue  # last written before the cut-off: nothing in it is recent enough
            with _open(path) as f:
                for rec in _records(f, stats):
                    if flt.matches(rec, since_iso):
                        out.append(rec)
        except FileNotFoundError:
            continue  # rotated away while we listed
        except (EOFError, gzip.BadGzipFile):
            stats.skipped += 1  # a compressed file cut short (logrotate still writing it)
    return list(out)


@dataclass(frozen=True)
class Cursor:
    inode: int
    offset: int
    # A digest of the file's first line: a file emptied and written again under the same
    # inode (copytruncate) is told apart by it even once it has grown past ``offset``.
    head: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"inode": self.inode, "offset": self.offset, "head": self.head}

    @classmethod
    def from_json(cls, doc: object) -> Cursor:
        if not isinstance(doc, dict):
            raise ValueError("cursor must be an object with inode, offset and head")
        inode, offset, head = doc.get("inode"), doc.get("offset"), doc.get("head", "")
        if (
            not isinstance(inode, int)
            or not isinstance(offset, int)
            or offset < 0
            or not isinstance(head, str)
            or len(head) > 64
        ):
            raise ValueError("cursor must be an object with inode, offset and head")
        return cls(inode, offset, head)


def _head(f: IO[bytes]) -> str:
    f.seek(0)
    first = f.readline(MAX_LINE)
    return hashlib.blake2b(first, digest_size=16).hexdigest() if first.endswith(b"\n") else ""


def end_cursor(live: Path) -> Cursor:
    """Where a follower starts: after the last whole line of the live file now."""
    try:
        with open(live, "rb") as f:
            st = os.fstat(f.fileno())
            return Cursor(st.st_ino, _whole_lines_end(f, st.st_size), _head(f))
    except FileNotFoundError:
        return Cursor(0, 0)


def _whole_lines_end(f: IO[bytes], size: int) -> int:
    """The offset just after the last newline at or before ``size``."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _read_from(f: IO[bytes], offset: int, stats: Stats) -> tuple[list[dict[str, Any]], int]:
    f.seek(offset)
    data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
    return list(_records(data[:end].split(b"\n"), stats)), offset + end


def read_new(
    live: Path, cursor: Cursor, flt: Filter, stats: Stats | None = None
) -> tuple[list[dict[str, Any]], Cursor]:
    """Records written since ``cursor`` that match, and the cursor to go on from."""
    stats = stats if stats is not None else Stats()
    found: list[dict[str, Any]] = []
    try:
        f = open(live, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return [], cursor  # between a rename and the daemon's reopen
    with f:
        st = os.fstat(f.fileno())
        offset = cursor.offset
        if st.st_ino != cursor.inode:
            found += _finish_rotated(live, cursor, stats)
            offset = 0
        elif st.st_size < offset or (offset and _head(f) != cursor.head):
            offset = 0  # copytruncate: the file was emptied under the same inode
        recs, end = _read_from(f, offset, stats)
        found += recs
        new = Cursor(st.st_ino, end, _head(f) if end else "")
    return [r for r in found if flt.matches(r, flt.since_iso)], new


def _finish_rotated(live: Path, cursor: Cursor, stats: Stats) -> list[dict[str, Any]]:
    """The rest of the file the cursor was in, now renamed (not yet compressed: logrotate's
    ``delaycompress`` keeps ``.1`` plain, and our snippet sets it)."""
    for path in reversed(audit_files(live)[:-1]):
        if path.name.endswith(".gz"):
            continue
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_ino == cursor.inode:
                    return _read_from(f, cursor.offset, stats)[0]
        except FileNotFoundError:
            continue
    return []
