"""The audit trail: one JSON line per request and per control action, to a file and the log.

Records carry identities (key id and name), never secrets. The file is opened in append mode
(0640) and reopened on SIGHUP so logrotate can move it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Literal

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
    "unavailable",  # the rate limiter failed: refused, never waved through (503)
]
# ... and of a control-plane action.
ControlOutcome = Literal["success", "failure"]
# What json.dumps(..., separators=(",", ":"), ensure_ascii=True, default=str) builds on every
# call, built once (issue 6: per-record allocations on the request path).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str)


def _iso(t: float) -> str:
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


class Audit:
    def __init__(self, path: Path | None, to_log: bool = True) -> None:
        self.path = path
        self.to_log = to_log
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text
        self.reopen()

    def _time(self, t: float) -> str:
        """_iso(t), formatting each second once (issue 6: strftime per record)."""
        sec = int(t)
        last = self._second
        if last[0] != sec:
            last = self._second = (sec, _iso(sec)[:-5])
        return f"{last[1]}.{int((t % 1) * 1000):03d}Z"

    def reopen(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                fd = os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
                )
                self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def write(self, record: dict[str, Any]) -> None:
        rec = {"time": self._time(record.pop("t", time.time())), **record}
        line = _ENCODER.encode(rec)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
        if self.to_log:
            log.info("%s", line)

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
            if self._file is not None:
                self._file.close()
                self._file = None
