"""Authentication at the gateway: what gets in, what gets which error, in which dialect."""

from __future__ import annotations

import aiohttp

from tests.conftest import GW, raw_request, status_of

GEN = {"model": "llama3", "prompt": "hi", "stream": False}


async def test_missing_key_is_401_with_bearer_challenge_in_both_dialects(gw: GW, http) -> None:
    async with http.post(gw.url + "/api/generate", json=GEN) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="localai-authd"'
        body = await r.json()
        assert isinstance(body["error"], str) and "missing API key" in body["error"]
    async with http.post(gw.url + "/v1/chat/completions", json={"model": "x"}) as r:
        assert r.status == 401
        err = (await r.json())["error"]
        assert err["code"] == "no_credentials" and err["type"] == "authentication_error"
        assert "missing API key" in err["message"]
    assert gw.upstream.seen == []


async def test_valid_key_passes_by_bearer_and_by_x_api_key(gw: GW, http) -> None:
    key = await gw.key()
    async with http.post(
        gw.url + "/api/generate", json=GEN, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        assert r.status == 200, await r.text()
    async with http.post(gw.url + "/api/generate", json=GEN, headers={"x-api-key": key}) as r:
        assert r.status == 200
    async with http.post(
        gw.url + "/api/generate", json=GEN, headers={"Authorization": f"bearer {key}"}
    ) as r:
        assert r.status == 200  # the scheme is case-insensitive (RFC 9110 §11.1)
    assert len(gw.upstream.seen) == 3


async def test_invalid_key_is_401_invalid_token(gw: GW, http) -> None:
    key = await gw.key()
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")  # breaks the checksum
    other = "sk_local_" + "A" * 12 + "_" + "B" * 49
    for bad in (typo, other, "nonsense-key-123", key + "x"):
        async with http.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {bad}"}) as r:
            assert r.status == 401
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert gw.upstream.seen == []


async def test_two_credentials_or_bad_grammar_is_400_invalid_request(gw: GW) -> None:
    key = await gw.key()
    cases = [
        f"Authorization: Bearer {key}\r\nAuthorization: Bearer {key}\r\n",
        f"Authorization: Bearer {key}\r\nx-api-key: {key}\r\n",
        "Authorization: Bearer\r\n",
        f"Authorization: Bearer {key} extra\r\n",
        "x-api-key: two words\r\n",
    ]
    for hdr in cases:
        resp = await raw_request(
            gw.port, f"GET /api/tags HTTP/1.1\r\nHost: x\r\n{hdr}\r\n".encode()
        )
        assert status_of(resp) == 400, (hdr, resp)
        assert b'error="invalid_request"' in resp
        assert key.encode() not in resp
    assert gw.upstream.seen == []


async def test_non_ascii_credentials_are_401_not_500(gw: GW) -> None:
    for value in (
        "Bearer sk_local_\xe9\xe9\xe9".encode("latin-1"),
        "Bearer ключ".encode(),
        b"Bearer \xff\xfe\xfd",
    ):
        req = b"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n"
        resp = await raw_request(gw.port, req)
        assert status_of(resp) in (400, 401), resp  # never a 500
        assert status_of(resp) != 500
    assert gw.upstream.seen == []


async def test_unsupported_scheme_is_401(gw: GW, http) -> None:
    async with http.get(gw.url + "/api/tags", headers={"Authorization": "Digest abc"}) as r:
        assert r.status == 401


async def test_expect_100_continue_without_key_gets_401_and_no_100(gw: GW) -> None:
    req = (
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
    )
    resp = await raw_request(gw.port, req)
    assert resp.startswith(b"HTTP/1.1 401"), resp[:100]
    assert b"100 Continue" not in resp
    assert gw.upstream.seen == []


async def test_expect_100_continue_with_key_continues_then_forwards(gw: GW) -> None:
    import asyncio
    import json

    key = await gw.key()
    body = json.dumps(GEN).encode()
    r, w = await asyncio.open_connection("127.0.0.1", gw.port)
    w.write(
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Expect: 100-continue\r\n\r\n"
    )
    await w.drain()
    first = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    assert first.startswith(b"HTTP/1.1 100 Continue")
    w.write(body)
    await w.drain()
    rest = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    assert rest.startswith(b"HTTP/1.1 200")
    w.close()
    assert gw.upstream.seen[0].body == body


async def test_revoked_and_expired_keys_are_refused(gw: GW, http) -> None:
    key = await gw.key("a")
    await gw.store.revoke("a")
    async with http.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 401


async def test_rotation_with_grace_then_without(gw: GW, http) -> None:
    old = await gw.key("r")
    new = (await gw.store.rotate("r", grace=3600)).key
    for k in (old, new):
        async with http.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {k}"}) as r:
            assert r.status == 200
    newer = (await gw.store.rotate("r", grace=0)).key
    for k, want in ((old, 401), (new, 401), (newer, 200)):
        async with http.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {k}"}) as r:
            assert r.status == want


async def test_imported_static_secret_works(gw: GW, http) -> None:
    await gw.store.import_secret("legacy", "my-old-static-key-0123456789")
    async with http.get(
        gw.url + "/api/tags", headers={"Authorization": "Bearer my-old-static-key-0123456789"}
    ) as r:
        assert r.status == 200
    async with http.get(
        gw.url + "/api/tags", headers={"Authorization": "Bearer my-old-static-key-0123456788"}
    ) as r:
        assert r.status == 401


async def test_client_errors_with_real_aiohttp_client_are_not_500(gw: GW) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + "/api/tags", headers={"x-api-key": ""}) as r,
    ):
        assert r.status in (400, 401)
