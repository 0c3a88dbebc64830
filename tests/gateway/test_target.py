"""Canonical request targets: what could be read two ways is refused before it is forwarded."""

from __future__ import annotations

import pytest

from localai_authd.gateway import routes
from localai_authd.gateway import target as tg
from tests.conftest import GW, raw_request, status_of

AMBIGUOUS = [
    "/api/../api/pull",
    "/api/./tags",
    "/api/%2e%2e/api/pull",
    "/api/%2E%2E/api/pull",
    "/api/.%2e/api/pull",
    "/api%2fpull",
    "/api%2Fpull",
    "/api%5cpull",
    "/api\\pull",
    "//api/tags",
    "/api//tags",
    "/api/tags%00",
    "/api/tags%0a",
    "/api/tags%7f",
    "/api/%252e%252e/pull",
    "/api/tags%",
    "/api/tags%zz",
    "/api/%ff%fe",
    "/api/tags#frag",
    "http://evil.example/api/tags",
    "*",
]


@pytest.mark.parametrize("target", AMBIGUOUS)
def test_canonicalize_refuses(target: str) -> None:
    with pytest.raises(tg.BadTarget):
        tg.canonicalize(target)


@pytest.mark.parametrize(
    ("target", "path", "forward"),
    [
        ("/api/tags", "/api/tags", "/api/tags"),
        ("/api/%70ull", "/api/pull", "/api/pull"),  # decoded once, policy sees /api/pull
        ("/v1/models/llama3%3A8b", "/v1/models/llama3:8b", "/v1/models/llama3:8b"),
        ("/v1/models/a%20b?x=1", "/v1/models/a b", "/v1/models/a%20b?x=1"),
        ("/api/tags/", "/api/tags/", "/api/tags/"),
    ],
)
def test_canonicalize_accepts_one_reading(target: str, path: str, forward: str) -> None:
    t = tg.canonicalize(target)
    assert (t.path, tg.encode(t.path, t.query)) == (path, forward)


def test_route_matching_is_exact_and_case_sensitive() -> None:
    assert routes.match("POST", "/api/pull").scope == "admin"
    assert routes.match("DELETE", "/api/delete").scope == "admin"
    assert routes.match("POST", "/api/blobs/sha256:abc").scope == "admin"
    assert routes.match("POST", "/api/chat").scope == "inference"
    for method, path, status in [
        ("POST", "/API/pull", 404),
        ("POST", "/api/pull/", 404),
        ("POST", "/api/Pull", 404),
        ("GET", "/api/pull", 405),
        ("POST", "/admin", 404),
        ("POST", "/api/blobs/", 404),
    ]:
        with pytest.raises(routes.RouteNotAllowed) as e:
            routes.match(method, path)
        assert e.value.status == status


def test_select_upstream_by_longest_prefix() -> None:
    assert routes.select_upstream("/api/tags", ("", "/gpu2")) == (0, "/api/tags")
    assert routes.select_upstream("/gpu2/api/tags", ("", "/gpu2")) == (1, "/api/tags")
    assert routes.select_upstream("/gpu22/api/tags", ("", "/gpu2")) == (0, "/gpu22/api/tags")
    assert routes.select_upstream("/api/tags", ("/gpu2",)) is None


@pytest.mark.parametrize("target", AMBIGUOUS)
async def test_gateway_answers_400_and_never_forwards(gw: GW, target: str) -> None:
    key = await gw.key()
    req = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode("latin-1")
    resp = await raw_request(gw.port, req)
    assert status_of(resp) == 400, resp[:200]
    assert gw.upstream.seen == []


async def test_connect_and_bad_versions(gw: GW) -> None:
    key = await gw.key()
    resp = await raw_request(gw.port, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) in (400, 405)
    for version in (b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9"):
        resp = await raw_request(
            gw.port,
            b"GET /api/tags "
            + version
            + b"\r\nHost: x\r\nAuthorization: Bearer "
            + key.encode()
            + b"\r\n\r\n",
        )
        assert status_of(resp) in (400, 505), (version, resp[:100])
    assert gw.upstream.seen == []


async def test_host_header_never_picks_the_upstream(gw: GW, http) -> None:
    key = await gw.key()
    async with http.get(
        gw.url + "/api/tags", headers={"Authorization": f"Bearer {key}", "Host": "evil.example:80"}
    ) as r:
        assert r.status == 200
    seen = dict((k.lower(), v) for k, v in gw.upstream.seen[0].headers)
    assert seen["host"] == f"127.0.0.1:{gw.upstream.port}"
    assert seen["x-forwarded-host"] == "evil.example:80"


async def test_percent_encoded_admin_path_still_needs_admin(gw: GW) -> None:
    key = await gw.key()  # inference only
    req = (
        f"POST /api/%70ull HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()
    resp = await raw_request(gw.port, req)
    assert status_of(resp) == 403
    assert b"scope_missing:admin" in resp
    assert gw.upstream.seen == []
