"""Forward-auth: /localai-authd/verify on its own, then behind real nginx and real Caddy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import GW
from tests.gateway.reverse_proxies import Proxy, start_caddy, start_nginx, which

VERIFY = "/localai-authd/verify"


async def _verify(
    http: aiohttp.ClientSession, gw: GW, headers: dict[str, str], method: str = "GET"
) -> aiohttp.ClientResponse:
    async with http.request(method, gw.url + VERIFY, headers=headers) as r:
        await r.read()
        return r


async def test_verify_allows_and_names_the_identity(gw: GW, http: aiohttp.ClientSession) -> None:
    key = await gw.key("laptop")
    r = await _verify(
        http,
        gw,
        {
            "Authorization": f"Bearer {key}",
            "X-Forwarded-Method": "POST",
            "X-Forwarded-Uri": "/api/chat",
        },
    )
    assert r.status == 200
    assert r.headers["X-Authd-Key"] == "laptop"
    assert r.headers["X-Authd-Scopes"] == "inference"
    assert gw.upstream.seen == []  # a check, never a forward
    rec = gw.audit()[-1]
    assert (rec["method"], rec["path"], rec["key"], rec["status"]) == (
        "POST",
        "/api/chat",
        "laptop",
        200,
    )


@pytest.mark.parametrize(
    ("method", "uri", "status", "reason"),
    [
        ("POST", "/api/pull", 403, "scope_missing:admin"),  # the policy: 403
        ("GET", "/api/nothing-here", 403, "route_not_allowed"),  # a 404 becomes 403
        ("DELETE", "/api/chat", 403, "method_not_allowed"),  # a 405 becomes 403
        ("GET", "/api/%2e%2e/pull", 403, "ambiguous_path"),  # a 400 target becomes 403
        ("GET", "/api/../api/pull", 403, "ambiguous_path"),
        ("GET", "http://evil/api/tags", 403, "bad_target"),
        ("get", "/api/tags", 403, "original_method_invalid"),
    ],
)
async def test_verify_applies_the_proxy_policy_to_the_original_uri(
    gw: GW, http: aiohttp.ClientSession, method: str, uri: str, status: int, reason: str
) -> None:
    key = await gw.key("laptop")
    r = await _verify(
        http,
        gw,
        {"Authorization": f"Bearer {key}", "X-Original-Method": method, "X-Original-URI": uri},
    )
    assert r.status == status
    assert gw.audit()[-1]["reason"] == reason


async def test_verify_credentials_fail_with_401_only(gw: GW, http: aiohttp.ClientSession) -> None:
    base = {"X-Original-URI": "/api/tags", "X-Original-Method": "GET"}
    r = await _verify(http, gw, base)
    assert r.status == 401 and "WWW-Authenticate" in r.headers
    r = await _verify(http, gw, {**base, "Authorization": "Bearer sk-wrong"})
    assert r.status == 401
    r = await _verify(http, gw, {**base, "Authorization": "Bearer a", "X-Api-Key": "b"})
    assert r.status == 401  # malformed credentials: 400 in the proxy, 401 here
    assert [x["status"] for x in gw.audit()] == [401, 401, 401]


async def test_verify_needs_an_unambiguous_original(gw: GW, http: aiohttp.ClientSession) -> None:
    key = await gw.key("laptop")
    auth = {"Authorization": f"Bearer {key}"}
    r = await _verify(http, gw, auth)
    assert r.status == 403
    r = await _verify(
        http, gw, {**auth, "X-Original-URI": "/api/tags", "X-Forwarded-Uri": "/api/pull"}
    )
    assert r.status == 403
    assert gw.audit()[-1]["reason"] == "original_uri_ambiguous"


async def test_verify_refuses_model_limited_keys_on_model_routes(
    gw: GW, http: aiohttp.ClientSession
) -> None:
    key = await gw.key("narrow", models=("llama3*",))
    auth = {"Authorization": f"Bearer {key}", "X-Original-Method": "POST"}
    r = await _verify(http, gw, {**auth, "X-Original-URI": "/api/chat"})
    assert r.status == 403
    assert gw.audit()[-1]["reason"] == "model_policy_needs_proxy"
    # A model list would reach the client unfiltered (forward-auth never sees the answer).
    r = await _verify(http, gw, {**auth, "X-Original-Method": "GET", "X-Original-URI": "/api/tags"})
    assert r.status == 403
    r = await _verify(
        http, gw, {**auth, "X-Original-Method": "GET", "X-Original-URI": "/api/version"}
    )
    assert r.status == 200


# ---- end to end, behind real reverse proxies --------------------------------------------------


@pytest.fixture(params=["nginx", "caddy"])
async def proxy(request: pytest.FixtureRequest, gw: GW, tmp_path: Path) -> AsyncIterator[Proxy]:
    name = request.param
    if which(name) is None:
        pytest.skip(f"{name} missing: apt-get install {name}")
    start = start_nginx if name == "nginx" else start_caddy
    p = await start(tmp_path / name, gw.url, gw.upstream.url)
    yield p
    await p.stop()


def _credentials_seen(gw: GW, secret: str) -> list[str]:
    return [
        f"{k}: {v}"
        for s in gw.upstream.seen
        for k, v in s.headers
        if k.lower() in ("authorization", "x-api-key") or secret in v
    ]


async def test_behind_a_real_proxy(proxy: Proxy, gw: GW, http: aiohttp.ClientSession) -> None:
    key = await gw.key("laptop")
    good = {"Authorization": f"Bearer {key}"}

    async with http.post(
        f"{proxy.url}/api/chat", json={"model": "llama3", "messages": []}, headers=good
    ) as r:
        body = await r.read()
        assert r.status == 200, (body, proxy.log.read_text())
    assert len(gw.upstream.seen) == 1
    seen = dict((k.lower(), v) for k, v in gw.upstream.seen[0].headers)
    assert seen["x-authd-key"] == "laptop"
    assert seen["x-authd-scopes"] == "inference"
    assert _credentials_seen(gw, key) == []  # the proxy was told to drop them

    async with http.get(f"{proxy.url}/api/tags", headers={"X-Api-Key": key}) as r:
        assert r.status == 200
    async with http.get(f"{proxy.url}/api/tags", headers={"Authorization": "Bearer sk-bad"}) as r:
        assert r.status == 401
    async with http.get(f"{proxy.url}/api/tags") as r:
        assert r.status == 401
    async with http.post(f"{proxy.url}/api/pull", json={"model": "x"}, headers=good) as r:
        assert r.status == 403  # the key has no admin scope
    async with http.get(f"{proxy.url}/api/%2e%2e/api/pull", headers=good) as r:
        assert r.status in (400, 403)
    async with http.get(f"{proxy.url}/not/a/route", headers=good) as r:
        assert r.status == 403

    assert len(gw.upstream.seen) == 2  # only the two allowed requests got through
    assert _credentials_seen(gw, key) == []
    audited = [(x["method"], x["path"], x["status"]) for x in gw.audit()]
    assert ("POST", "/api/chat", 200) in audited
    assert ("POST", "/api/pull", 403) in audited
