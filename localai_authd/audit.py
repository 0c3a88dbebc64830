"""The audit trail: one JSON line per request and per control action, to a file and the log.

Records carry identities (key id and name), never secrets. The file is opened in append mode
(0640); a reload opens it again (the new file first, then the old one is closed) so that
logrotate can move it. Whether records reach the file is tracked: a failed write (disk full)
or a file removed from under us that cannot be created again makes the trail not
``writable``; with ``[audit] required`` the gateway then refuses new requests (503). Each
change of that state is logged once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from .logsetup import direct_line
from .redact import marked, redact
from .reload import Prepared

log = logging.getLogger("localai_authd.audit")

# What became of a request through the gateway ("reason" in the record says why) ...
RequestOutcome = Literal[
    "ok",
    "denied",
    "unauthenticated",
    "bad_request",
    "upstream_status",
    "upstream_error",
    "upstream_stalled",
    "killed",
    "client_disconnected",
    "rate_limited",  # over a key's limit (429; reason "limit:<name>")
    "throttled",  # its source failed authentication too often (429 auth_throttled)
    "unavailable",  # refused, never waved through (503): the rate limiter failed, or
    # [audit] required and records cannot be written
    "internal_error",  # a fault of the gateway's own (aiohttp answered 500)
]
# ... and of a control-plane action.
ControlOutcome = Literal["success", "failure"]
# What json.dumps(..., separators=(",", ":"), ensure_ascii=True, default=str) builds on every
# call, built once (bench/README.md: per-record allocations on the request path).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str)


def _iso(t: float) -> str:
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


class Audit:
    def __init__(
        self,
        path: Path | None,
        to_log: bool = True,
        required: bool = False,
        check_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.to_log = to_log
        self.required = required
        self.writable = True  # False while records cannot reach the file
        self._lock = threading.Lock()
        self._fd: int | None = _open(path) if path is not None else None
        self._torn = False  # a partial line could not be cut off: end it before the next
        # Whether the file is still there costs an fstat: per record when records are
        # required, else at most once per check_interval seconds.
        self.check_interval = check_interval
        self._checked = time.monotonic()  # when the file was last seen still linked
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    @property
    def refusing(self) -> bool:
        """New requests are to be refused: records are required and cannot be written.

        A removed file is noticed here, before the request is served; a full disk only by
        a failed write (so the request whose record failed was already served; the journal
        still has its record when [audit] log is on)."""
        if not self.required:
            return False
        if self.writable and self._fd is not None:
            with self._lock:
                try:
                    self._linked_fd(self._fd)
                except OSError as e:
                    error: OSError | None = e
                else:
                    error = None
            if error is not None:
                self._set_writable(False, error)
        return not self.writable

    def _time(self, t: float) -> str:
        """_iso(t), formatting each second once (bench/README.md: strftime per record)."""
        sec = int(t)
        last = self._second
        if last[0] != sec:
            last = self._second = (sec, _iso(sec)[:-5])
        return f"{last[1]}.{int((t % 1) * 1000):03d}Z"

    # ---- reload: prepare (may fail, changes nothing), then commit (cannot fail) --------------

    def prepare(self, path: Path | None, to_log: bool, required: bool) -> Prepared:
        """Open the file a reload switches to (the same path again, for logrotate);
        raises OSError. Nothing changes until the commit, which swaps the new file in
        and only then closes the old one; the abort closes the new one."""
        fd = _open(path) if path is not None else None

        def commit() -> None:
            with self._lock:
                old, self._fd = self._fd, fd
                self.path, self.to_log, self.required = path, to_log, required
                self._torn = False
            if old is not None:
                with contextlib.suppress(OSError):  # a commit cannot fail
                    os.close(old)
            self._set_writable(True, None)

        def abort() -> None:
            if fd is not None:
                os.close(fd)

        return Prepared(commit, abort)

    # ---- writing -----------------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> None:
        rec = {"time": self._time(record.pop("t", time.time())), **record}
        line = _ENCODER.encode(rec)
        if marked(line):  # a key or token in any field (a control request's name, ...)
            line = _ENCODER.encode(
                {k: redact(v) if isinstance(v, str) else v for k, v in rec.items()}
            )
        if self.path is not None:
            self._to_file(line)
        if self.to_log:
            direct = direct_line(log)
            if direct is None or not direct.write_line(log.name, line):
                log.info("%s", line)

    def _to_file(self, line: str) -> None:
        with self._lock:
            if self._fd is None:
                return  # closed: the daemon is stopping
            data = (("\n" if self._torn else "") + line + "\n").encode()
            error: OSError | None = None
            try:
                fd = self._fd
                now = time.monotonic()
                if self.required or now - self._checked >= self.check_interval:
                    fd, self._checked = self._linked_fd(fd), now
                written = os.write(fd, data)
                if written != len(data):  # the disk filled up mid-record
                    error = OSError(
                        errno.ENOSPC,
                        f"{os.strerror(errno.ENOSPC)}: {written} of {len(data)} bytes written",
                    )
                    self._cut(fd, written)
                else:
                    self._torn = False
            except OSError as e:
                error = e
        self._set_writable(error is None, error)

    def _cut(self, fd: int, written: int) -> None:
        """Take back the ``written`` bytes of a record cut short: a record is whole or absent."""
        try:
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        except OSError:
            self._torn = True  # then at least end the partial line before the next record

    def _linked_fd(self, fd: int) -> int:
        """The file to write to. A file removed while open swallows records without a
        trace: create it again (renamed by logrotate is fine: the records still land in the
        renamed file)."""
        if os.fstat(fd).st_nlink > 0:
            return fd
        assert self.path is not None
        new = _open(self.path)  # raises: records cannot be written until it can be created
        os.close(fd)
        log.warning("audit file %s was removed; created it again", self.path)
        self._fd, self._torn = new, False
        return new

    def _set_writable(self, ok: bool, error: OSError | None) -> None:
        if ok == self.writable:
            return
        self.writable = ok
        if ok:
            log.warning("audit records are written to %s again", self.path)
        elif self.required:
            log.error(
                "cannot write audit records to %s (%s): refusing new requests with 503 "
                "until it can ([audit] required = true)",
                self.path,
                error,
            )
        else:
            log.error(
                "cannot write audit records to %s (%s): requests are still served "
                "([audit] required = false); free space or fix the file",
                self.path,
                error,
            )

    def control(
        self,
        action: str,
        peer_uid: int | None,
        outcome: ControlOutcome,
        reason: str = "ok",
        **fields: Any,
    ) -> None:
        """A control-plane action (create, rotate, revoke, ...), with the peer's uid."""
        self.write(
            {
                "kind": "control",
                "action": action,
                "peer_uid": peer_uid,
                "outcome": outcome,
                "reason": reason,
                **fields,
            }
        )

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
