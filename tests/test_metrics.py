"""Metrics without a socket: route groups and bounded labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from localai_authd.gateway.routes import ROUTES
from localai_authd.metrics import ROUTE_GROUPS, Metrics, route_group, status_class


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
