"""Prometheus metrics: one registry per daemon, fed from the per-request audit record.

Label values are bounded by construction, never taken from what a client sent:

- ``route``: a fixed set of route groups derived from the matched allow-list route;
- ``key``: the name of an identity in the key table ("" when there is none);
- ``status_class``: "2xx" ... "5xx", or "none" (no answer was sent);
- ``reason`` / ``limit``: stable reason strings set by our code; anything that does not look
  like one, and anything past the first :data:`MAX_REASONS` distinct values, is "other".

The registry is a :class:`prometheus_client.CollectorRegistry` of its own (never the
library's global one), so two daemons in one process (the tests) keep separate counts.

The series every request feeds are plain numbers in a custom collector (the library's way
for values kept elsewhere), turned into metric families when Prometheus scrapes: the
library's own Counter and Histogram take a lock per increment and walk the buckets in
Python, about 15 µs per request (bench/). Everything happens on the event loop's thread.
"""

from __future__ import annotations

import platform
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


class _Histogram:
    """One label set's buckets (not cumulative: each observation lands in one) and sum.
    The bucket is the first whose bound is at least the value, as the library's Histogram
    counts it."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(SECONDS_BUCKETS) + 1)  # the last one: +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(SECONDS_BUCKETS, value)] += 1
        self.sum += value


_LE = [*(floatToGoString(b) for b in SECONDS_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]


class _PerRequest(Collector):
    """The series each request feeds, as plain numbers until a scrape asks for them."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}  # route, status class, key
        self.duration: dict[str, _Histogram] = {}  # by route group
        self.ttfb: dict[str, _Histogram] = {}
        self.tokens: dict[tuple[str, str], int] = {}  # key, direction
        self.auth_failures: dict[str, int] = {}  # by reason
        self.limit_rejections: dict[str, int] = {}  # by limit

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "localai_authd_requests",
            "Requests answered, by route group, status class and key name",
            labels=("route", "status_class", "key"),
        )
        for labels, n in list(self.requests.items()):
            requests.add_metric(labels, n)
        yield requests
        yield self._histogram(
            "localai_authd_request_duration_seconds",
            "Time from the request's arrival to its last byte, by route group",
            self.duration,
        )
        yield self._histogram(
            "localai_authd_time_to_first_byte_seconds",
            "Time from the request's arrival to the upstream's first byte, by route group",
            self.ttfb,
        )
        tokens = CounterMetricFamily(
            "localai_authd_tokens",
            "Model tokens by key name and direction (in: prompt, out: completion)",
            labels=("key", "direction"),
        )
        for (key, direction), n in list(self.tokens.items()):
            tokens.add_metric((key, direction), n)
        yield tokens
        failures = CounterMetricFamily(
            "localai_authd_auth_failures",
            "Requests refused for their credentials (401 and malformed credentials), by reason",
            labels=("reason",),
        )
        for reason, n in list(self.auth_failures.items()):
            failures.add_metric((reason,), n)
        yield failures
        limited = CounterMetricFamily(
            "localai_authd_limit_rejections",
            "Requests refused by a limit (429), by limit",
            labels=("limit",),
        )
        for limit, n in list(self.limit_rejections.items()):
            limited.add_metric((limit,), n)
        yield limited

    @staticmethod
    def _histogram(name: str, doc: str, series: dict[str, _Histogram]) -> Metric:
        fam = HistogramMetricFamily(name, doc, labels=("route",))
        for group, h in list(series.items()):
            total, cumulative = 0, []
            for le, n in zip(_LE, h.counts, strict=True):
                total += n
                cumulative.append((le, float(total)))
            fam.add_metric((group,), cumulative, h.sum)
        return fam


class Metrics:
    """The daemon's metrics. ``in_flight`` is read at scrape time (streams in flight)."""

    def __init__(self, in_flight: Callable[[], int] = lambda: 0) -> None:
        # No "_created" series beside every counter and histogram: they double the series
        # for a timestamp Prometheus does not use. (A library-wide switch; nothing else in
        # the daemon exports metrics.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._per_request = _PerRequest()
        r.register(self._per_request)
        self.in_flight = Gauge(
            "localai_authd_streams_in_flight",
            "Authenticated requests (streams) being forwarded right now",
            registry=r,
        )
        self.in_flight.set_function(lambda: float(in_flight()))
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

    # ---- feeding ---------------------------------------------------------------------------

    def observe_record(
        self,
        rec: Mapping[str, Any],
        group: str,
        first_byte_s: float | None = None,
    ) -> None:
        """One request, from its audit record (``key`` is a key-table name or None)."""
        series = self._per_request
        key = rec.get("key") or ""
        status = rec.get("status") or 0
        labels = (group, status_class(status), key)
        series.requests[labels] = series.requests.get(labels, 0) + 1
        hist = series.duration.get(group)
        if hist is None:  # both series of a group from its first request on (zeros included)
            hist = series.duration[group] = _Histogram()
            series.ttfb[group] = _Histogram()
        hist.observe((rec.get("duration_ms") or 0.0) / 1000)
        if first_byte_s is not None:
            series.ttfb[group].observe(first_byte_s)
        outcome = rec.get("outcome")
        reason = rec.get("reason")
        if outcome == "unauthenticated" or (status == 400 and reason == "malformed_credentials"):
            _add(series.auth_failures, self._auth_reason(reason), 1)
        elif status == 429:
            limit = reason.removeprefix("limit:") if isinstance(reason, str) else reason
            _add(series.limit_rejections, self._limit_reason(limit), 1)
        # Token counts, where the gateway counted them (the record's tokens_in/tokens_out).
        tin, tout = _count(rec.get("tokens_in")), _count(rec.get("tokens_out"))
        if tin or tout:
            self.observe_tokens(key, tin, tout)

    def observe_tokens(self, key: str, tokens_in: int, tokens_out: int) -> None:
        """Tokens a request used (fed by token counting, where the body is seen)."""
        if tokens_in > 0:
            _add(self._per_request.tokens, (key, "in"), tokens_in)
        if tokens_out > 0:
            _add(self._per_request.tokens, (key, "out"), tokens_out)

    def observe_upstream(self, prefix: str, up: bool, seconds: float) -> None:
        label = prefix or "/"
        self.upstream_up.labels(label).set(1.0 if up else 0.0)
        self.upstream_latency.labels(label).set(seconds)

    def observe_reload(self, reloaded: bool) -> None:
        self.reloads.labels("applied" if reloaded else "refused").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _add(counts: dict[Any, int], label: Any, n: int) -> None:
    counts[label] = counts.get(label, 0) + n
