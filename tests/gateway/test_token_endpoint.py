"""The token endpoint: a refresh never widens, and the reply says what the token carries.

Every reply is checked against the issued token itself (decoded here, independently of
the code that minted it)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest

from localai_authd.keys import tokens as tok
from tests.conftest import GW, GwFactory

TOKEN_URL = "/localai-authd/token"


def decode(token: str) -> dict[str, Any]:
    payload = token[len(tok.PREFIX) + tok.SKID_LEN : -tok.SIG_LEN]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    doc: dict[str, Any] = json.loads(raw)
    return doc


async def exchange(
    url: str, credential: str, body: bytes | dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {credential}"}
    kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"data": body}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + TOKEN_URL, headers=headers, **kw) as r,
    ):
        doc: dict[str, Any] = await r.json()
        return r.status, doc


def assert_reply_is_the_token(doc: dict[str, Any]) -> dict[str, Any]:
    claims = decode(doc["token"])
    assert doc["scopes"] == claims["sc"]
    assert doc["expires_at"] == claims["e"]
    return claims


async def status_with(url: str, credential: str, path: str, body: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + path, json=body, headers={"Authorization": f"Bearer {credential}"}) as r,
    ):
        return r.status


async def test_refresh_with_an_empty_body_keeps_the_narrowed_scopes(gw: GW) -> None:
    key = await gw.key("ops", scopes=("inference", "admin"))
    status, narrow = await exchange(gw.url, key, {"scopes": ["inference"]})
    assert status == 200 and assert_reply_is_the_token(narrow)["sc"] == ["inference"]
    for body in (None, b"", b"{}", {}):
        status, refreshed = await exchange(gw.url, narrow["token"], body)
        assert status == 200, body
        assert assert_reply_is_the_token(refreshed)["sc"] == ["inference"], body
        # and the gateway treats it so: no admin route with the refreshed token
        assert await status_with(gw.url, refreshed["token"], "/api/pull", {"model": "x"}) == 403
    # a refresh of a refresh stays narrow too
    status, again = await exchange(gw.url, refreshed["token"])
    assert status == 200 and assert_reply_is_the_token(again)["sc"] == ["inference"]


async def test_a_key_token_states_the_keys_scopes(gw: GW) -> None:
    key = await gw.key("ops", scopes=("inference", "admin"))
    status, doc = await exchange(gw.url, key)
    assert status == 200 and assert_reply_is_the_token(doc)["sc"] == ["inference", "admin"]


async def test_refresh_may_narrow(gw: GW) -> None:
    key = await gw.key("ops", scopes=("inference", "admin"))
    _, full = await exchange(gw.url, key)
    status, narrower = await exchange(gw.url, full["token"], {"scopes": ["admin"]})
    assert status == 200 and assert_reply_is_the_token(narrower)["sc"] == ["admin"]
    assert await status_with(gw.url, narrower["token"], "/api/chat", {"model": "x"}) == 403


@pytest.mark.parametrize(
    "wanted", [["admin"], ["inference", "admin"], ["admin", "inference"], ["admin", "admin"]]
)
async def test_refresh_with_wider_scopes_is_403_and_issues_nothing(
    gw: GW, wanted: list[str]
) -> None:
    key = await gw.key("ops", scopes=("inference", "admin"))
    _, narrow = await exchange(gw.url, key, {"scopes": ["inference"]})
    status, doc = await exchange(gw.url, narrow["token"], {"scopes": wanted})
    assert status == 403 and "token" not in doc


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["root"]},
        {"scopes": []},
        {"scopes": "inference"},
        {"scopes": [1]},
        {"scopes": ["inference"] * 17},
        {"scopes": ["inference\n"]},
        {"ttl": -1},
        {"ttl": 0},
        {"ttl": "0s"},
        {"ttl": 1e308},
        {"ttl": "1h\n"},
        {"ttl": " 1h"},
        {"ttl": "9" * 400 + "d"},
        {"ttl": True},
        {"ttl": [1]},
        {"ttl": {"s": 1}},
        {"ttl": "2d"},  # over max_ttl
        {"bogus": 1},
    ],
)
async def test_bad_requests_are_400(gw: GW, body: dict[str, Any]) -> None:
    key = await gw.key("agent")
    status, doc = await exchange(gw.url, key, body)
    assert status == 400 and "token" not in doc, doc


@pytest.mark.parametrize(
    "raw",
    [b'{"ttl": NaN}', b'{"ttl": Infinity}', b'{"ttl": -Infinity}', b"[" * 100_00, b"\xff"],
)
async def test_non_json_numbers_and_hostile_bodies_are_400(gw: GW, raw: bytes) -> None:
    key = await gw.key("agent")
    status, _ = await exchange(gw.url, key, raw)
    assert status in (400, 413)


async def test_ttl_is_what_was_asked_and_bounded(make_gw: GwFactory) -> None:
    g = await make_gw(tokens={"max_ttl": "1h", "default_ttl": "10m"})
    key = await g.key("agent")
    status, doc = await exchange(g.url, key, {"ttl": "30m"})
    claims = assert_reply_is_the_token(doc)
    assert status == 200 and claims["e"] - claims["i"] == 1800
    status, doc = await exchange(g.url, key)
    claims = assert_reply_is_the_token(doc)
    assert claims["e"] - claims["i"] == 600
    status, _ = await exchange(g.url, key, {"ttl": 3601})
    assert status == 400


async def test_a_suspended_keys_token_cannot_be_refreshed(gw: GW) -> None:
    key = await gw.key("agent")
    _, doc = await exchange(gw.url, key)
    await gw.store.suspend("agent")
    status, _ = await exchange(gw.url, doc["token"])
    assert status == 401
    assert gw.audit()[-1]["reason"] == "suspended"
    await gw.store.resume("agent")
    status, _ = await exchange(gw.url, doc["token"])
    assert status == 200


async def _chunked(gw: GW, key: str, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    r, w = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        w.write(
            b"POST " + TOKEN_URL.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        for c in chunks:  # each chunk on the wire by itself
            w.write(b"%x\r\n%s\r\n" % (len(c), c))
            await w.drain()
            await asyncio.sleep(0.05)
        w.write(b"0\r\n\r\n")
        async with asyncio.timeout(10):
            raw = await r.read()
    finally:
        w.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_a_chunked_body_is_read_whole(gw: GW) -> None:
    key = await gw.key("agent")
    status, doc = await _chunked(gw, key, [b'{"ttl":', b' "30m", "scopes": ', b'["inference"]}'])
    assert status == 200, doc
    claims = assert_reply_is_the_token(doc)
    assert claims["e"] - claims["i"] == 1800
    status, _ = await _chunked(gw, key, [b'{"ttl": "30m"}', b" " * 5000])
    assert status == 413
