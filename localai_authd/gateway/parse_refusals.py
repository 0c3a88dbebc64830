"""Audit records for requests the HTTP parser refused, capped per source.

aiohttp refuses smuggling attempts (CL+TE, duplicate Content-Length, obs-fold, bare LF, a CR
in a header value, a bad chunk size, an oversize head, ...) before our pipeline sees them.
Each refusal still lands in the audit trail, as ``kind: request``, ``outcome: bad_request``,
``reason: http_parse_error:<class>``, with the client's address and never the raw bytes
(they may hold a credential, and they are the attacker's to choose).

A flood must not fill the disk: each source (an IPv4 address, an IPv6 /64, as the
brute-force throttle counts them) gets at most ``per_source`` records per
``window`` seconds; what is over is counted and written as one summary record
(``reason: http_parse_error:suppressed``) when the window closes. The number of sources
tracked is bounded too; past it, new sources share one bucket (``client: "*"``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .throttle import source_key

OVERFLOW = "*"


@dataclass
class _Window:
    started: float
    written: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    flush: asyncio.TimerHandle | None = None


def record(client: str | None, reason: str, request_id: str, **extra: Any) -> dict[str, Any]:
    """An audit record of the same shape as the gateway's other request records."""
    return {
        "kind": "request",
        "request_id": request_id,
        "key_id": None,
        "key": None,
        "auth": None,
        "client": client,
        "method": None,
        "path": None,
        "model": None,
        "status": 400,
        "bytes_in": 0,
        "bytes_out": 0,
        "duration_ms": 0.0,
        "outcome": "bad_request",
        "reason": reason,
        **extra,
    }


class ParseRefusals:
    def __init__(
        self,
        write: Callable[[dict[str, Any]], None],
        new_id: Callable[[], str],
        per_source: int = 20,
        window: float = 60.0,
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._new_id = new_id
        self.per_source = per_source
        self.window = window
        self.max_sources = max_sources
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def refused(self, client: str | None, exc: BaseException) -> None:
        """One request refused by the parser with ``exc``: audit it, or count it."""
        cls = type(exc).__name__
        now = self._clock()
        source = self._source(source_key(client), now)
        win = self._windows.get(source)
        if win is None or now - win.started >= self.window:
            if win is not None:
                self._summarize(source)
            win = self._windows[source] = _Window(now)
        if win.written < self.per_source:
            win.written += 1
            self._write(record(client, f"http_parse_error:{cls}", self._new_id()))
            return
        if not win.suppressed:
            with_loop = _running_loop()
            if with_loop is not None:
                delay = max(0.0, win.started + self.window - now)
                win.flush = with_loop.call_later(delay, self._summarize, source)
        win.suppressed[cls] += 1

    def _source(self, client: str, now: float) -> str:
        if client in self._windows or len(self._windows) < self.max_sources:
            return client
        for s, w in list(self._windows.items()):
            if now - w.started >= self.window:
                self._summarize(s)
                del self._windows[s]
        return client if len(self._windows) < self.max_sources else OVERFLOW

    def _summarize(self, source: str) -> None:
        win = self._windows.get(source)
        if win is None or not win.suppressed:
            return
        if win.flush is not None:
            win.flush.cancel()
            win.flush = None
        total = sum(win.suppressed.values())
        self._write(
            record(
                source,
                "http_parse_error:suppressed",
                self._new_id(),
                suppressed=total,
                suppressed_by_class=dict(win.suppressed),
                window_s=self.window,
            )
        )
        win.suppressed.clear()

    def flush(self) -> None:
        """Write every pending summary (at shutdown)."""
        for source in list(self._windows):
            self._summarize(source)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
