"""Prometheus metrics: one registry per daemon, fed from the per-request audit record.

Label values are bounded by construction, never taken from what a client sent:

- ``route``: a fixed set of route groups derived from the matched allow-list route;
- ``key``: the name of an identity in the key table ("" when there is none);
- ``status_class``: "2xx" ... "5xx", or "none" (no answer was sent);
- ``reason`` / ``limit``: stable reason strings set by our code; anything that does not look
  like one, and anything past the first :data:`MAX_REASONS` distinct values, is "other".

The registry is a :class:`prometheus_client.CollectorRegistry` of its own (never the
library's global one), so two daemons in one process (the tests) keep separate counts.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from . import __version__

# Scrapers are served the classic text format (promtool and Prometheus read it alike).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REASONS = 64
# Inference answers take from milliseconds (a cached embedding) to minutes (a model load and
# a long generation), hence buckets far past the library's default 10 s.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# Route pattern (gateway/routes.py) -> the group it is counted under.
_GROUPS: dict[str, str] = {
    "/api/chat": "chat",
    "/v1/chat/completions": "chat",
    "/v1/responses": "chat",
    "/api/generate": "generate",
    "/v1/completions": "generate",
    "/completion": "generate",
    "/completions": "generate",
    "/infill": "generate",
    "/api/embed": "embed",
    "/api/embeddings": "embed",
    "/v1/embeddings": "embed",
    "/embedding": "embed",
    "/embeddings": "embed",
    "/v1/rerank": "rerank",
    "/v1/score": "rerank",
    "/rerank": "rerank",
    "/api/tags": "models",
    "/api/ps": "models",
    "/api/show": "models",
    "/v1/models": "models",
    "/v1/models/*": "models",
}
ROUTE_GROUPS = frozenset({*_GROUPS.values(), "model_admin", "other", "token", "verify", "unrouted"})
_REASON = re.compile(r"[a-z0-9_.:-]{1,64}")


def route_group(pattern: str | None, scope: str = "", special: str = "") -> str:
    """The group of a request: from our own endpoint's name or the matched route's pattern."""
    if special:
        return special if special in ROUTE_GROUPS else "other"
    if pattern is None:
        return "unrouted"  # refused before a route was matched (401, 404, bad target)
    if scope == "admin":
        return "model_admin"
    return _GROUPS.get(pattern, "other")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "none"


def _count(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


class _Bounded:
    """A label value from our own stable reason strings, with a ceiling on how many."""

    def __init__(self, limit: int = MAX_REASONS) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: object) -> str:
        if not isinstance(value, str) or not _REASON.fullmatch(value):
            return "other"
        if value not in self._seen:
            if len(self._seen) >= self._limit:
                return "other"
            self._seen.add(value)
        return value


class Metrics:
    """The daemon's metrics. ``in_flight`` is read at scrape time (streams in flight)."""

    def __init__(self, in_flight: Callable[[], int] = lambda: 0) -> None:
        # No "_created" series beside every counter and histogram: they double the series
        # for a timestamp Prometheus does not use. (A library-wide switch; nothing else in
        # the daemon exports metrics.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "localai_authd_requests",
            "Requests answered, by route group, status class and key name",
            ("route", "status_class", "key"),
            registry=r,
        )
        self.duration = Histogram(
            "localai_authd_request_duration_seconds",
            "Time from the request's arrival to its last byte, by route group",
            ("route",),
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "localai_authd_time_to_first_byte_seconds",
            "Time from the request's arrival to the upstream's first byte, by route group",
            ("route",),
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "localai_authd_streams_in_flight",
            "Authenticated requests (streams) being forwarded right now",
            registry=r,
        )
        self.in_flight.set_function(lambda: float(in_flight()))
        self.tokens = Counter(
            "localai_authd_tokens",
            "Model tokens by key name and direction (in: prompt, out: completion)",
            ("key", "direction"),
            registry=r,
        )
        self.auth_failures = Counter(
            "localai_authd_auth_failures",
            "Requests refused for their credentials (401 and malformed credentials), by reason",
            ("reason",),
            registry=r,
        )
        self.limit_rejections = Counter(
            "localai_authd_limit_rejections",
            "Requests refused by a limit (429), by limit",
            ("limit",),
            registry=r,
        )
        self.upstream_up = Gauge(
            "localai_authd_upstream_up",
            "1 if the upstream accepted a connection at the last probe, else 0; by prefix",
            ("upstream",),
            registry=r,
        )
        self.upstream_latency = Gauge(
            "localai_authd_upstream_probe_seconds",
            "How long the last connection probe of the upstream took, by prefix",
            ("upstream",),
            registry=r,
        )
        self.reloads = Counter(
            "localai_authd_reloads",
            "Configuration reloads by outcome (applied, refused)",
            ("outcome",),
            registry=r,
        )
        Info("localai_authd_build", "Version of localai-authd and its Python", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self._auth_reason = _Bounded()
        self._limit_reason = _Bounded()
        # labels() builds and checks a tuple and takes a lock on every call; the children
        # it returns are kept here (bounded like the labels themselves).
        self._req: dict[tuple[str, int, str], Any] = {}
        self._dur: dict[str, tuple[Any, Any]] = {}

    # ---- feeding ---------------------------------------------------------------------------

    def observe_record(
        self,
        rec: Mapping[str, Any],
        group: str,
        first_byte_s: float | None = None,
    ) -> None:
        """One request, from its audit record (``key`` is a key-table name or None)."""
        key = rec.get("key") or ""
        status = rec.get("status") or 0
        counter = self._req.get((group, status, key))
        if counter is None:
            counter = self.requests.labels(group, status_class(status), key)
            self._req[(group, status, key)] = counter
        counter.inc()
        hist = self._dur.get(group)
        if hist is None:
            hist = self._dur[group] = (self.duration.labels(group), self.ttfb.labels(group))
        hist[0].observe((rec.get("duration_ms") or 0.0) / 1000)
        if first_byte_s is not None:
            hist[1].observe(first_byte_s)
        outcome = rec.get("outcome")
        reason = rec.get("reason")
        if outcome == "unauthenticated" or (status == 400 and reason == "malformed_credentials"):
            self.auth_failures.labels(self._auth_reason(reason)).inc()
        elif status == 429:
            limit = reason.removeprefix("limit:") if isinstance(reason, str) else reason
            self.limit_rejections.labels(self._limit_reason(limit)).inc()
        # Token counts, where the gateway counted them (the record's tokens_in/tokens_out).
        tin, tout = _count(rec.get("tokens_in")), _count(rec.get("tokens_out"))
        if tin or tout:
            self.observe_tokens(key, tin, tout)

    def observe_tokens(self, key: str, tokens_in: int, tokens_out: int) -> None:
        """Tokens a request used (fed by token counting, where the body is seen)."""
        if tokens_in > 0:
            self.tokens.labels(key, "in").inc(tokens_in)
        if tokens_out > 0:
            self.tokens.labels(key, "out").inc(tokens_out)

    def observe_upstream(self, prefix: str, up: bool, seconds: float) -> None:
        label = prefix or "/"
        self.upstream_up.labels(label).set(1.0 if up else 0.0)
        self.upstream_latency.labels(label).set(seconds)

    def observe_reload(self, reloaded: bool) -> None:
        self.reloads.labels("applied" if reloaded else "refused").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
