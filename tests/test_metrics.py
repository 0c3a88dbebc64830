"""Metrics without a socket: route groups and bounded labels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from localai_authd.gateway.routes import ROUTES
from localai_authd.metrics import (
    ROUTE_GROUPS,
    SECONDS_BUCKETS,
    Metrics,
    route_group,
    status_class,
)


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_route_has_a_group_from_the_fixed_set() -> None:
    for r in ROUTES:
        assert route_group(r.pattern, r.scope) in ROUTE_GROUPS
    assert route_group("/api/chat", "inference") == "chat"
    assert route_group("/api/pull", "admin") == "model_admin"
    assert route_group(None) == "unrouted"
    assert route_group("/api/chat", "inference", special="verify") == "verify"
    assert route_group(None, special="something-new") == "other"


def test_status_classes() -> None:
    assert [status_class(s) for s in (0, 101, 200, 302, 404, 503, 999)] == [
        "none",
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "none",
    ]


def test_reason_labels_are_bounded() -> None:
    m = Metrics()
    for i in range(200):
        m.observe_record({"status": 401, "outcome": "unauthenticated", "reason": f"r{i}"}, "chat")
    m.observe_record({"status": 401, "outcome": "unauthenticated", "reason": "Bad Reason!"}, "x")
    reasons = {
        dict(labels)["reason"]
        for (name, labels) in _samples(m)
        if name == "localai_authd_auth_failures_total"
    }
    assert len(reasons) == 65 and "other" in reasons


def test_two_registries_do_not_share_counts() -> None:
    a, b = Metrics(), Metrics()
    a.observe_record({"status": 200, "key": "k", "duration_ms": 5.0}, "chat")
    a.observe_tokens("k", 7, 3)
    key = (
        "localai_authd_requests_total",
        (("key", "k"), ("route", "chat"), ("status_class", "2xx")),
    )
    assert _samples(a)[key] == 1
    assert key not in _samples(b)
    assert _samples(a)[("localai_authd_tokens_total", (("direction", "in"), ("key", "k")))] == 7
    assert _samples(a)[("localai_authd_tokens_total", (("direction", "out"), ("key", "k")))] == 3


def test_build_info_and_reloads() -> None:
    m = Metrics()
    m.observe_reload(True)
    m.observe_reload(False)
    m.observe_reload(False)
    s = _samples(m)
    assert s[("localai_authd_reloads_total", (("outcome", "applied"),))] == 1
    assert s[("localai_authd_reloads_total", (("outcome", "refused"),))] == 2
    assert any(n == "localai_authd_build_info" for n, _ in s)


def test_limits_and_tokens_from_the_record() -> None:
    m = Metrics()
    m.observe_record(
        {"status": 429, "outcome": "rate_limited", "reason": "limit:tokens_per_minute"}, "chat"
    )
    m.observe_record({"status": 200, "key": "k", "tokens_in": 12, "tokens_out": 30}, "chat")
    m.observe_record({"status": 200, "key": "k", "tokens_in": True}, "chat")  # not a count
    s = _samples(m)
    assert s[("localai_authd_limit_rejections_total", (("limit", "tokens_per_minute"),))] == 1
    assert s[("localai_authd_tokens_total", (("direction", "in"), ("key", "k")))] == 12
    assert s[("localai_authd_tokens_total", (("direction", "out"), ("key", "k")))] == 30


_GROUPS = sorted(ROUTE_GROUPS)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_GROUPS),
            st.sampled_from([0, 101, 200, 204, 302, 400, 401, 429, 500, 502, 999]),
            st.sampled_from(["", "laptop", "ci"]),
            # durations around, on and beyond every bucket bound, and zero
            st.one_of(
                st.sampled_from([0.0, *(b * 1000 for b in SECONDS_BUCKETS), 1e7]),
                st.floats(min_value=0, max_value=1e6, allow_nan=False),
            ),
            st.one_of(st.none(), st.sampled_from(SECONDS_BUCKETS), st.floats(0, 1e3)),
            st.integers(0, 10**6),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_per_request_series_expose_what_the_librarys_own_would(
    requests: list[tuple[str, int, str, float, float | None, int]],
) -> None:
    """The per-request series are plain numbers exposed by a collector of ours: the same
    observations through prometheus_client's own Counter and Histogram must expose the
    very same samples (names, labels, buckets, sums)."""
    m = Metrics()
    ref = CollectorRegistry()
    counter = Counter("localai_authd_requests", "d", ("route", "status_class", "key"), registry=ref)
    hists = {
        name: Histogram(name, "d", ("route",), buckets=SECONDS_BUCKETS, registry=ref)
        for name in (
            "localai_authd_request_duration_seconds",
            "localai_authd_time_to_first_byte_seconds",
        )
    }
    tokens = Counter("localai_authd_tokens", "d", ("key", "direction"), registry=ref)
    for group, status, key, ms, first, out in requests:
        m.observe_record(
            {"status": status, "key": key or None, "duration_ms": ms, "tokens_out": out},
            group,
            first,
        )
        counter.labels(group, status_class(status), key).inc()
        hists["localai_authd_request_duration_seconds"].labels(group).observe(ms / 1000)
        # A group's time-to-first-byte series exists from its first request on, as when
        # both children were made together (a refusal has no first byte: zero counts).
        ttfb = hists["localai_authd_time_to_first_byte_seconds"].labels(group)
        if first is not None:
            ttfb.observe(first)
        if out:
            tokens.labels(key, "out").inc(out)
    ours = _samples(m)
    theirs = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(ref).decode())
        for s in fam.samples
    }
    assert theirs  # not vacuous
    for name, value in theirs.items():
        assert ours.get(name) == value, name
    families = {n for n, _ in theirs}
    assert {n for n, _ in ours if n in families} == families
    assert {k for k in ours if k[0] in families} == set(theirs)
