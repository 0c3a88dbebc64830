"""Connections cannot be hoarded: a header deadline, per-source and global caps.

aiohttp has no deadline for reading a request head, and keeps an idle keep-alive connection
for ``keepalive_timeout`` (its default is about an hour; ours comes from [connections]
idle_timeout). A client that opens sockets and trickles bytes (slowloris) would hold file
descriptors until the daemon runs out. Here, per connection:

- a whole request head must arrive within ``header_timeout`` of the connection opening, or
  of the first byte of the next request on a kept-alive connection; else it is closed;
- a source address (IPv6 by /64) may hold ``max_per_source`` connections, all listeners
  together ``max_total`` (kept below the process's file limit); a connection beyond either
  is answered with a short 429/503 and closed, and a warning is logged (at most one per
  ``LOG_EVERY`` seconds, with the count of the ones not logged).

This is the gateway runner's handler with those checks added; the runner's own handler
(parser errors that never echo the request) is unchanged underneath.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..limitsconfig import ConnectionsConfig
from .errors import SERVER
from .runner import GatewayRunner, _QuietRequestHandler, _QuietServer
from .throttle import source_key

log = logging.getLogger("localai_authd.connections")
LOG_EVERY = 10.0
RESERVED_FDS = 1024  # for the upstream sockets, the control socket, files


def _refusal(status: int, phrase: str, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\nServer: {SERVER}\r\nConnection: close\r\n"
        f"Retry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_PER_SOURCE = _refusal(429, "Too Many Requests", "too many connections from your address\n")
_TOTAL = _refusal(503, "Service Unavailable", "too many connections\n")


def fd_ceiling(configured: int) -> int:
    """``configured``, lowered to stay below the process's open-file limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or configured + RESERVED_FDS <= soft:
        return configured
    lowered = max(1, soft - RESERVED_FDS)
    log.warning(
        "[connections] max_total = %d is above the open-file limit %d minus %d reserved: "
        "using %d (raise LimitNOFILE= or lower max_total)",
        configured,
        soft,
        RESERVED_FDS,
        lowered,
    )
    return lowered


class ConnectionGuard:
    """The counts, shared by every listener of the daemon."""

    def __init__(self, cfg: ConnectionsConfig) -> None:
        self.cfg = cfg
        self.max_total = fd_ceiling(cfg.max_total)
        self.total = 0
        self.by_source: Counter[str] = Counter()
        self.refused = 0
        self.header_timeouts = 0
        self._last_log = -LOG_EVERY
        self._unlogged = 0

    def configure(self, cfg: ConnectionsConfig) -> None:
        """A reload: new caps and timeouts apply to new connections."""
        self.cfg = cfg
        self.max_total = fd_ceiling(cfg.max_total)

    def open(self, source: str) -> bytes | None:
        """Count a new connection; or the refusal to send if it is over a cap."""
        if self.total >= self.max_total:
            self._refused(f"{self.total} connections open (max_total {self.max_total})")
            return _TOTAL
        if self.by_source[source] >= self.cfg.max_per_source:
            self._refused(
                f"{self.by_source[source]} connections open from {source} "
                f"(max_per_source {self.cfg.max_per_source})"
            )
            return _PER_SOURCE
        self.total += 1
        self.by_source[source] += 1
        return None

    def close(self, source: str) -> None:
        self.total -= 1
        left = self.by_source[source] - 1
        if left > 0:
            self.by_source[source] = left
        else:
            del self.by_source[source]

    def _refused(self, why: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more refused since the last message)" if self._unlogged else ""
        log.warning("refusing a new connection: %s%s", why, more)
        self._last_log, self._unlogged = now, 0


class _GuardedHandler(_QuietRequestHandler):
    __slots__ = ("_guard", "_head_timer", "_source")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        assert isinstance(manager, _GuardedServer)
        self._guard: ConnectionGuard | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        peer = transport.get_extra_info("peername")
        self._source = source_key(peer[0] if isinstance(peer, tuple) and peer else None)
        refusal = manager.guard.open(self._source)
        if refusal is not None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal)
            transport.close()
            return
        self._guard = manager.guard
        # Per connection, so a reload's idle_timeout applies to the next connection.
        self._keepalive_timeout = manager.guard.cfg.idle_timeout
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._guard is None:
            return  # refused at the door: aiohttp never saw it
        self._guard.close(self._source)
        self._guard = None
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = not self._request_in_progress and not self._messages
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._disarm()
        elif waiting and self._head_timer is None and data:
            self._arm()  # the first byte of the next request on a kept-alive connection

    def _arm(self) -> None:
        assert self._guard is not None
        self._disarm()
        self._head_timer = self._loop.call_later(
            self._guard.cfg.header_timeout, self._head_deadline
        )

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._messages or self._request_in_progress or self._guard is None:
            return
        self._guard.header_timeouts += 1
        log.debug("closing a connection from %s: no request head in time", self._source)
        self.force_close()
        if self.transport is not None:
            self.transport.close()


class _GuardedServer(_QuietServer):
    guard: ConnectionGuard

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(GatewayRunner):
    """The gateway runner with the connection guard; ``keepalive_timeout`` is the guard's
    idle timeout."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        kwargs["keepalive_timeout"] = guard.cfg.idle_timeout
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer
        server.guard = self.guard  # type: ignore[attr-defined]
        return server
