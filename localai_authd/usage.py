"""Usage per key: requests, tokens in and out, streams, bytes, last use; across restarts.

Fed by the gateway's audit records (one per request; only those of an authenticated key
count). Kept in ``<state dir>/usage.json``, written whole and atomically (a temporary file,
fsync, rename, fsync of the directory) every ``FLUSH_EVERY`` seconds when something changed
and on stop, so a crash loses at most the last interval and never leaves a torn file.
Bounded: at most ``MAX_KEYS`` keys (the least recently used is dropped), and a daily
history (UTC days) of ``HISTORY_DAYS`` days for ``authctl usage --since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("localai_authd.usage")
FLUSH_EVERY = 30.0
MAX_KEYS = 4096
HISTORY_DAYS = 90
COUNTERS = ("requests", "tokens_in", "tokens_out", "streams", "bytes_in", "bytes_out")
VERSION = 1


_LAST_DAY: list[tuple[int, str]] = [(-1, "")]  # the last UTC day formatted (per request)


def _day(t: float) -> str:
    n = int(t // 86400)
    last = _LAST_DAY[0]
    if last[0] != n:
        last = _LAST_DAY[0] = (n, time.strftime("%Y-%m-%d", time.gmtime(n * 86400)))
    return last[1]


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def _add(into: dict[str, Any], rec: dict[str, Any]) -> None:
    into["requests"] += 1
    into["tokens_in"] += int(rec.get("tokens_in") or 0)
    into["tokens_out"] += int(rec.get("tokens_out") or 0)
    into["streams"] += 1 if rec.get("stream") else 0
    into["bytes_in"] += int(rec.get("bytes_in") or 0)
    into["bytes_out"] += int(rec.get("bytes_out") or 0)


class UsageStore:
    def __init__(self, path: Path, clock: Any = time.time) -> None:
        self.path = path
        self._clock = clock
        # kid -> {"name", counters..., "last_used", "last_client"}
        self.keys: dict[str, dict[str, Any]] = {}
        # "YYYY-MM-DD" -> kid -> counters
        self.days: dict[str, dict[str, dict[str, int]]] = {}
        self.dirty = False
        self.history_days = HISTORY_DAYS
        self._task: asyncio.Task[None] | None = None
        # Writes run on worker threads, and a cancelled flush's thread runs on: the final
        # flush on stop must not overlap it (one writer, in order; the newest lands last).
        self._write_lock = threading.Lock()

    # ---- fed by the gateway ---------------------------------------------------------------

    def record(self, rec: dict[str, Any], ctx: object = None) -> None:
        """One audit record (a gateway record hook); requests of an authenticated key count."""
        kid = rec.get("key_id")
        if rec.get("kind") != "request" or not rec.get("auth") or not isinstance(kid, str):
            return
        now = self._clock()
        entry = self.keys.pop(kid, None)  # re-inserted last: the dict is in LRU order
        if entry is None:
            entry = {"name": rec.get("key"), **_zero()}
            if len(self.keys) >= MAX_KEYS:
                del self.keys[next(iter(self.keys))]
        self.keys[kid] = entry
        entry["name"] = rec.get("key")
        _add(entry, rec)
        entry["last_used"] = now
        entry["last_client"] = rec.get("client")
        today = _day(now)
        day = self.days.get(today)
        if day is None:
            day = self.days[today] = {}
            self._trim_days()
        bucket = day.get(kid)
        if bucket is None:
            if len(day) >= MAX_KEYS:
                return
            bucket = day[kid] = _zero()
        _add(bucket, rec)
        self.dirty = True

    def _trim_days(self) -> None:
        for old in sorted(self.days)[:-HISTORY_DAYS]:
            del self.days[old]

    # ---- read by the control plane --------------------------------------------------------

    def report(self, since: float | None = None, kid: str | None = None) -> list[dict[str, Any]]:
        """Per key: the totals, or (``since`` seconds) the sum of the UTC days it touches."""
        rows = []
        first = _day(self._clock() - since) if since is not None else None
        for k, entry in self.keys.items():
            if kid is not None and k != kid:
                continue
            if first is None:
                counts = {c: entry[c] for c in COUNTERS}
            else:
                counts = _zero()
                for day, keys in self.days.items():
                    if day >= first and k in keys:
                        for c in COUNTERS:
                            counts[c] += keys[k][c]
                if not counts["requests"]:
                    continue
            rows.append(
                {
                    "name": entry.get("name"),
                    "kid": k,
                    **counts,
                    "last_used": entry.get("last_used"),
                    "last_client": entry.get("last_client"),
                }
            )
        rows.sort(key=lambda r: -(r["last_used"] or 0))
        return rows

    def kid_of(self, name: str) -> str | None:
        """The most recent key of that name seen in usage (a key deleted since, say)."""
        for k, entry in reversed(self.keys.items()):
            if entry.get("name") == name:
                return k
        return None

    # ---- persistence ----------------------------------------------------------------------

    def load(self) -> None:
        # Temporary files left by a crash mid-write (the file itself is always whole).
        with contextlib.suppress(OSError):
            for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = json.loads(raw)
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            keys = {str(k): _clean_entry(v) for k, v in doc["keys"].items()}
            days = {
                str(d): {str(k): _clean_counts(v) for k, v in ks.items()}
                for d, ks in doc["days"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("usage file %s is unreadable (%s): moved to %s", self.path, e, aside)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return
        self.keys = dict(list(keys.items())[-MAX_KEYS:])
        self.days = days
        self._trim_days()

    def _encode(self) -> bytes:
        doc = {"version": VERSION, "keys": self.keys, "days": self.days}
        return json.dumps(doc, separators=(",", ":")).encode()

    def save(self) -> None:
        self._write(self._encode())

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A name of its own per write: two writers of one name truncate each other's file.
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def flush(self) -> None:
        if not self.dirty:
            return
        self.dirty = False  # records arriving while it writes mark it again
        data = self._encode()  # here, not in the thread: the loop keeps changing the dicts
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as e:
            self.dirty = True
            log.error("cannot write the usage file %s: %s", self.path, e)

    async def _every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    def start(self, interval: float = FLUSH_EVERY) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every(interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.dirty = True
        await self.flush()


def _int(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise ValueError(f"not a count: {v!r}")
    return v


def _clean_counts(v: Any) -> dict[str, int]:
    return {c: _int(v.get(c, 0)) for c in COUNTERS}


def _clean_entry(v: Any) -> dict[str, Any]:
    last = v.get("last_used")
    client = v.get("last_client")
    name = v.get("name")
    return {
        "name": name if isinstance(name, str) else None,
        **_clean_counts(v),
        "last_used": float(last) if isinstance(last, int | float) else None,
        "last_client": client if isinstance(client, str) else None,
    }
