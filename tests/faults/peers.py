"""Upstreams that misbehave in ways the shared fake upstream does not: a one-byte-a-second
drip, and one that records how far a streamed upload got before it broke."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, int]:
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


class _Peer:
    """A peer served on a free loopback port by its ``_handle``."""

    runner: web.AppRunner | None
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner, self.port = await _serve(self._handle)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


@dataclass
class Drip(_Peer):
    """Streams ``count`` bytes one a second, then goes silent until the peer leaves."""

    count: int
    interval: float = 1.0
    sent_at: list[float] = field(default_factory=list)  # monotonic time of each byte
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the peer closed on us
    runner: web.AppRunner | None = None
    port: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.method == "GET":  # /api/tags and the like: answered at once
            return web.json_response({"models": []})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for i in range(self.count):
                if i:
                    await asyncio.sleep(self.interval)
                await resp.write(b"x")
                self.sent_at.append(time.monotonic())
            await asyncio.sleep(3600)  # silent: only the gateway's idle timeout ends this
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.set()
            raise
        return resp


@dataclass
class UploadProbe(_Peer):
    """Reads a streamed upload and notes whether it ended, and how much arrived."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    broken: asyncio.Event = field(default_factory=asyncio.Event)  # cancelled or reset
    received: int = 0
    completed: bool = False
    runner: web.AppRunner | None = None
    port: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.started.set()
        try:
            async for chunk in request.content.iter_any():
                self.received += len(chunk)
        except BaseException:
            # Cancelled (the gateway closed the connection) or a payload error: either way
            # the upload did not complete, which is what the test looks for.
            self.broken.set()
            raise
        self.completed = True
        return web.json_response({"ok": True})
