"""The gateway's own endpoints that answer before authentication: health, readiness, and the
forward-auth check (gateway/forward_auth.py).

- ``GET /localai-authd/health``: liveness. The event loop ran this handler; nothing else is
  looked at, so it stays cheap however often it is asked.
- ``GET /localai-authd/ready``: the keyring is open (the key table is loaded) and every
  upstream accepts a TCP connection. The probe result is kept for :data:`PROBE_TTL` seconds
  and shared by concurrent callers, so a check every second costs at most one connection
  per upstream per second. The answer says ready or not and nothing more: which part is
  missing is for the operator (`authctl status`, the metrics), not for a stranger.

Health probes are not audited one by one: a load balancer asking every second would bury
the requests that matter under 86,400 lines a day, and the answer holds no decision about
anyone. (Forward-auth checks are audited like any request: they are decisions.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from .errors import SERVER
from .forward_auth import VERIFY_PATH, Ctx, Gateway, verify

OWN_PREFIX = "/localai-authd/"
HEALTH_PATH = "/localai-authd/health"
READY_PATH = "/localai-authd/ready"
PROBE_TTL = 1.0
PROBE_TIMEOUT = 1.0
_HEADERS = {"Server": SERVER, "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Probe:
    up: bool
    seconds: float
    at: float


class UpstreamProbe:
    """TCP connection probes of upstreams, cached for ``ttl`` seconds per URL; callers that
    ask while a probe runs wait for that probe instead of starting their own."""

    def __init__(self, ttl: float = PROBE_TTL, timeout: float = PROBE_TIMEOUT) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._last: dict[str, Probe] = {}
        self._running: dict[str, asyncio.Task[Probe]] = {}

    async def check(self, url: str) -> Probe:
        now = time.monotonic()
        last = self._last.get(url)
        if last is not None and now - last.at < self.ttl:
            return last
        task = self._running.get(url)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._probe(url))
            self._running[url] = task
            task.add_done_callback(lambda _t: self._running.pop(url, None))
        # Shielded: one caller going away must not cancel the probe the others wait for.
        return await asyncio.shield(task)

    async def _probe(self, url: str) -> Probe:
        u = urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        started = time.monotonic()
        up = False
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(u.hostname, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            up = True
        except (OSError, TimeoutError):
            pass
        done = time.monotonic()
        probe = Probe(up, done - started, done)
        self._last[url] = probe
        return probe


def _answer(status: int, text: str, head: bool) -> web.Response:
    body = b"" if head else f'{{"status":"{text}"}}'.encode()
    resp = web.Response(status=status, body=body, headers=_HEADERS)
    resp.content_type = "application/json"
    return resp


class OwnEndpoints:
    """Dispatch for the paths under /localai-authd/ that need no key (the token endpoint is
    not one of them: it goes through the gateway's pipeline)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.probe = UpstreamProbe()

    async def ready(self) -> bool:
        gw = self.gateway
        if not gw.store.loaded:
            return False
        probes = await asyncio.gather(*(self.probe.check(u.url) for u in gw.cfg.upstreams))
        return all(p.up for p in probes)

    async def respond(
        self, request: web.Request, ctx: Ctx, listener_index: int
    ) -> web.StreamResponse | None:
        """The answer for one of our paths, or None: not ours, the pipeline goes on.
        ``ctx.special`` is set when the request is one to audit (forward-auth)."""
        path = request.raw_path
        if path == VERIFY_PATH or path.startswith(VERIFY_PATH + "?"):
            ctx.special = "verify"
            return await verify(self.gateway, request, ctx, listener_index)
        if request.method not in ("GET", "HEAD"):
            return None
        head = request.method == "HEAD"
        if path == HEALTH_PATH:
            return _answer(200, "ok", head)
        if path == READY_PATH:
            if await self.ready():
                return _answer(200, "ready", head)
            return _answer(503, "not_ready", head)
        return None
