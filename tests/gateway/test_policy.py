"""Scopes and model globs at the gateway, and the headers that cross it."""

from __future__ import annotations

from localai_authd.gateway import headers, policy, routes
from tests.conftest import GW


async def test_admin_routes_need_the_admin_scope(gw: GW, http) -> None:
    user = await gw.key("user")
    admin = await gw.key("ops", scopes=("inference", "admin"))
    for method, path in [
        ("POST", "/api/pull"),
        ("POST", "/api/create"),
        ("POST", "/api/push"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:00"),
    ]:
        async with http.request(
            method,
            gw.url + path,
            json={"model": "llama3"},
            headers={"Authorization": f"Bearer {user}"},
        ) as r:
            assert r.status == 403, path
            assert (await r.json())["error"].endswith("(scope_missing:admin)")
    assert gw.upstream.seen == []
    async with http.post(
        gw.url + "/api/pull", json={"model": "llama3"}, headers={"Authorization": f"Bearer {admin}"}
    ) as r:
        assert r.status == 200
    admin_only = await gw.key("adm", scopes=("admin",))
    async with http.post(
        gw.url + "/api/chat",
        json={"model": "llama3"},
        headers={"Authorization": f"Bearer {admin_only}"},
    ) as r:
        assert r.status == 403


async def test_unknown_routes_are_denied_after_auth(gw: GW, http) -> None:
    key = await gw.key()
    async with http.get(gw.url + "/secret-admin-ui") as r:
        assert r.status == 401  # no route list for strangers
    async with http.get(gw.url + "/secret-admin-ui", headers={"x-api-key": key}) as r:
        assert r.status == 404
    async with http.get(gw.url + "/api/chat", headers={"x-api-key": key}) as r:
        assert r.status == 405
    async with http.get(gw.url + "/v1/nope", headers={"x-api-key": key}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "route_not_allowed"
    assert gw.upstream.seen == []


async def test_model_globs(gw: GW, http) -> None:
    key = await gw.key("limited", models=("llama3*",))
    h = {"Authorization": f"Bearer {key}"}
    async with http.post(
        gw.url + "/api/generate", json={"model": "llama3:8b", "stream": False}, headers=h
    ) as r:
        assert r.status == 200
    async with http.post(
        gw.url + "/v1/chat/completions", json={"model": "mistral"}, headers=h
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "model_not_allowed"
    async with http.post(gw.url + "/api/generate", data=b"not json", headers=h) as r:
        assert r.status == 400  # a body the gateway cannot read is refused, whatever the key
        assert (await r.json())["error"].startswith("the request body is not one JSON value")
    async with http.post(gw.url + "/api/generate", json={"prompt": "hi"}, headers=h) as r:
        assert r.status == 403  # a limited key must name a model
    async with http.get(gw.url + "/v1/models/mistral", headers=h) as r:
        assert r.status == 404  # as if it did not exist
    async with http.get(gw.url + "/v1/models/llama3", headers=h) as r:
        assert r.status == 200
    assert [s.path for s in gw.upstream.seen] == ["/api/generate", "/v1/models/llama3"]


def test_policy_copy_needs_both_models() -> None:
    copy = routes.match("POST", "/api/copy")
    assert policy.models_in_body(copy, {"source": "a", "destination": "b"}) == ["a", "b"]
    assert policy.decide_body(("a*",), copy, {"source": "a1"}).reason == "model_unknown"
    assert policy.decide_body(("a*",), copy, {"source": "a1", "destination": "b1"}).reason == (
        "model_not_allowed"
    )
    assert policy.decide_body(("a*",), copy, {"source": "a1", "destination": "a2"}).allowed
    assert not policy.decide_models(("a*",), ["a1", "b1"]).allowed
    assert policy.decide_models((), None).allowed


async def test_upstream_never_sees_credentials_or_hop_by_hop(gw: GW) -> None:
    from tests.conftest import raw_request, status_of

    key = await gw.key()
    req = (
        "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        "Cookie: session=abc\r\n"
        "X_Api_Key: smuggled\r\n"
        "Connection: keep-alive, X-Secret-Hop\r\n"
        "X-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
        "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
        "X-Custom: kept\r\nContent-Type: application/json\r\nX-Request-Id: spoofed\r\n"
        'Content-Length: 34\r\n\r\n{"model":"llama3","stream":false}\n'
    ).encode()
    resp = await raw_request(gw.port, req)
    assert status_of(resp) == 200
    seen = gw.upstream.seen[0]
    names = {k.lower() for k, _ in seen.headers}
    for gone in (
        "authorization",
        "proxy-authorization",
        "cookie",
        "x_api_key",
        "x-secret-hop",
        "keep-alive",
        "te",
        "upgrade",
        "x-real-ip",
        "forwarded",
    ):
        assert gone not in names, gone
    values = dict((k.lower(), v) for k, v in seen.headers)
    assert values["x-forwarded-for"] == "127.0.0.1"
    assert values["x-forwarded-proto"] == "http"
    assert values["content-type"] == "application/json"  # on the allow-list
    assert "x-custom" not in names  # not on it (tests/gateway/test_headers.py: the whole list)
    assert [v for k, v in seen.headers if k.lower() == "x-request-id"] == [
        (await gw.records(1))[-1]["request_id"]
    ]
    assert values["host"] == f"127.0.0.1:{gw.upstream.port}"
    assert key not in repr(seen.headers) and key.encode() not in seen.body


def test_headers_to_client_drop_hop_by_hop() -> None:
    out = headers.to_client(
        [
            ("Content-Type", "a"),
            ("Connection", "close, X-Y"),
            ("X-Y", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Server", "up"),
        ]
    )
    assert out == [("Content-Type", "a")]


def test_client_session_never_reads_the_environment_or_decompresses() -> None:
    from localai_authd.gateway.forward import new_session

    async def check() -> None:
        s = new_session()
        try:
            assert s.trust_env is False and s.auto_decompress is False
            assert s.connector is not None and s.connector.limit == 0
        finally:
            await s.close()

    import asyncio

    asyncio.run(check())


async def test_body_limit_from_content_length_and_from_chunked(gw: GW) -> None:
    from tests.conftest import raw_request, status_of

    key = await gw.key()
    head = f"POST /api/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
    resp = await raw_request(gw.port, (head + "Content-Length: 5000\r\n\r\n").encode())
    assert status_of(resp) == 413  # decided before reading: no body was sent at all
    chunk = b"x" * 3000
    body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk, len(chunk), chunk)
    resp = await raw_request(gw.port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + body)
    assert status_of(resp) == 413
    assert gw.upstream.seen == []
