"""The metrics' two ends in the daemon: the hook that feeds them from each request's audit
record, and the listener Prometheus scrapes (``[metrics] listen``, its own socket, off unless
set, loopback-only unless it has TLS).

The scrape probes the upstreams first (the same one-second cache as ``/ready``), so
``localai_authd_upstream_up`` is never staler than the scrape interval.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiohttp import web

from ..metrics import CONTENT_TYPE, Metrics, route_group
from .app import Gateway
from .context import Ctx, RecordHook
from .errors import SERVER

METRICS_PATH = "/metrics"


def record_hook(metrics: Metrics) -> RecordHook:
    def observe(rec: dict[str, Any], ctx: Ctx) -> None:
        route = ctx.route
        group = route_group(
            route.pattern if route is not None else None,
            route.scope if route is not None else "",
            ctx.special,
        )
        first = ctx.out.first_byte - ctx.started if ctx.out.first_byte else None
        metrics.observe_record(rec, group, first)

    return observe


def attach(gateway: Gateway) -> Metrics:
    """Metrics for ``gateway``: its own registry, fed by its audit records."""
    metrics = Metrics(in_flight=lambda: gateway.in_flight)
    gateway.record_hooks.append(record_hook(metrics))
    return metrics


def metrics_app(metrics: Metrics, gateway: Gateway) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        ups = gateway.cfg.upstreams
        probes = await asyncio.gather(*(gateway.own.probe.check(u.url) for u in ups))
        for u, p in zip(ups, probes, strict=True):
            metrics.observe_upstream(u.prefix, p.up, p.seconds)
        resp = web.Response(body=metrics.exposition(), headers={"Server": SERVER})
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    app = web.Application()
    app.router.add_get(METRICS_PATH, scrape)
    return app


async def start_listener(
    metrics: Metrics,
    gateway: Gateway,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve ``/metrics`` on ``host:port`` (0: any free port); the runner and the port."""
    runner = web.AppRunner(metrics_app(metrics, gateway), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:  # the port the kernel picked, for port 0
        bound = int(addr[1])
    return runner, bound
