"""Forward-auth answers for the same key and the same source as the proxy does: a source that
keeps failing is throttled, and a key's request rate is counted, whichever door it uses.

/localai-authd/verify is on every gateway listener, so anyone who can reach the proxy can
reach it too: without the throttle it is an unthrottled oracle for guessed credentials, and
without the rate limit a key limited to N requests a minute gets any number through nginx.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import aiohttp
import pytest

from localai_authd.limitsconfig import LimitsConfig
from tests.conftest import GW, GwFactory

VERIFY = "/localai-authd/verify"
# (header names the proxy uses for the original request)
STYLES = [("X-Original-Method", "X-Original-URI"), ("X-Forwarded-Method", "X-Forwarded-Uri")]


def _bad_credentials(key: str) -> list[dict[str, str]]:
    kid = key.split("_")[2]
    return [
        {"Authorization": "Bearer sk_local_AAAAAAAAAAAA_" + "b" * 32},
        {"Authorization": f"Bearer sk_local_{kid}_" + "Wrong1secretXX" * 3},
        {"x-api-key": "sk_local_" + "z" * 40},
        {"Authorization": "Bearer tk_local_eyJhbGciOiJub25lIn0.e30.x"},
        {"Authorization": "Basic " + base64.b64encode(b"laptop:nope").decode()},
        {"Authorization": "Bearer"},
    ]


async def _limited(make_gw: GwFactory, **limits: Any) -> GW:
    gw = await make_gw()
    gw.gateway.apply_config(dataclasses.replace(gw.gateway.cfg, limits=LimitsConfig(**limits)))
    return gw


async def _verify(http: aiohttp.ClientSession, gw: GW, headers: dict[str, str]) -> int:
    async with http.get(gw.url + VERIFY, headers=headers) as r:
        await r.read()
        return r.status


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("bad", range(6))
async def test_failures_at_verify_are_throttled_like_the_proxys(
    make_gw: GwFactory, http: aiohttp.ClientSession, style: tuple[str, str], bad: int
) -> None:
    gw = await _limited(make_gw, failed_auth_per_minute=3, failed_auth_cooldown=60)
    key = await gw.key("laptop")
    method_h, uri_h = style
    original = {method_h: "POST", uri_h: "/api/chat"}
    wrong = _bad_credentials(key)[bad]
    for _ in range(3):
        assert await _verify(http, gw, {**original, **wrong}) in (401, 403)
    # The source is throttled now: the right key is not looked at, at either door.
    assert await _verify(http, gw, {**original, "Authorization": f"Bearer {key}"}) == 403
    assert gw.audit()[-1]["reason"] == "auth_throttled"
    async with http.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 429


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("first_door", ["proxy", "verify"])
async def test_a_keys_request_rate_counts_at_verify(
    make_gw: GwFactory, http: aiohttp.ClientSession, style: tuple[str, str], first_door: str
) -> None:
    gw = await _limited(make_gw, requests_per_minute=3)
    key = await gw.key("laptop")
    auth = {"Authorization": f"Bearer {key}"}
    method_h, uri_h = style
    original = {**auth, method_h: "GET", uri_h: "/api/tags"}
    if first_door == "proxy":
        async with http.get(gw.url + "/api/tags", headers=auth) as r:
            assert r.status == 200
    while len([r for r in gw.audit() if r["status"] == 200]) < 3:
        assert await _verify(http, gw, original) == 200
    # A fourth request within the minute, by either door, is over the key's rate.
    assert await _verify(http, gw, original) == 403
    assert gw.audit()[-1]["reason"] == "limit:requests_per_minute"
    async with http.get(gw.url + "/api/tags", headers=auth) as r:
        assert r.status == 429
