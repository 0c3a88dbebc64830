"""A refused credential is audited with the kid it presented and a precise reason, while
the client sees the same 401 for all of them."""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from localai_authd.keys import format as kf
from tests.conftest import GW, GwFactory


async def _refused(gw: GW, headers: dict[str, str]) -> tuple[str, str | None]:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/v1/models", headers=headers) as r:
            assert r.status == 401
            # OpenAI's dialect: one code for every reason, none of ours
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with s.get(gw.url + "/api/tags", headers=headers) as r:
            assert r.status == 401
            body = await r.text()
    rec = gw.audit()[-1]
    assert rec["status"] == 401 and rec["key"] is None
    # the client gets the same generic words whatever the reason
    assert body in (
        '{"error": "invalid, expired or revoked API key"}',
        '{"error": "invalid name or key in Basic credentials"}',
        '{"error": "invalid or expired token"}',
    ), body
    return rec["reason"], rec["key_id"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_each_key_refusal_is_audited_precisely(make_gw: GwFactory) -> None:
    gw = await make_gw(tokens={"leeway": 0})
    old = await gw.key("laptop")
    kid = gw.store.get("laptop").kid
    new = (await gw.store.rotate("laptop")).key
    assert await _refused(gw, bearer(old)) == ("secret_retired", kid)
    assert await _refused(gw, bearer(kf.mint(kid))) == ("wrong_secret", kid)
    assert await _refused(gw, bearer(kf.mint("Q" * 12))) == ("unknown_key", "Q" * 12)
    assert await _refused(gw, {"x-api-key": "not-a-key-of-anyone-123"}) == ("unknown_key", None)
    await gw.store.suspend("laptop")
    assert await _refused(gw, bearer(new)) == ("suspended", kid)
    await gw.store.resume("laptop")
    await gw.store.edit("laptop", expires=gw.store.now() + 1)
    await asyncio.sleep(1.2)
    assert await _refused(gw, bearer(new)) == ("expired", kid)
    await gw.store.revoke("laptop")
    assert await _refused(gw, bearer(new)) == ("revoked", kid)
    raw = base64.b64encode(f"laptop:{new}".encode()).decode()
    assert await _refused(gw, {"Authorization": f"Basic {raw}"}) == ("revoked", kid)


async def test_token_refusals_name_the_key(gw: GW) -> None:
    key = await gw.key("agent")
    kid = gw.store.get("agent").kid
    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.url + "/localai-authd/token", headers=bearer(key)) as r,
    ):
        token = (await r.json())["token"]
    await gw.store.suspend("agent")
    assert await _refused(gw, bearer(token)) == ("suspended", kid)
    await gw.store.resume("agent")
    await gw.store.rotate("agent")  # the secret it was issued under is gone
    assert await _refused(gw, bearer(token)) == ("secret_retired", kid)
    assert await _refused(gw, bearer(token[:-2] + "AA")) == ("invalid_token", None)


async def test_forward_auth_refusals_carry_kid_and_reason(gw: GW) -> None:
    old = await gw.key("laptop")
    kid = gw.store.get("laptop").kid
    await gw.store.rotate("laptop")
    headers = {"X-Original-URI": "/api/tags", "X-Original-Method": "GET", **bearer(old)}
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + "/localai-authd/verify", headers=headers) as r,
    ):
        assert r.status == 401
    rec = gw.audit()[-1]
    assert (rec["reason"], rec["key_id"]) == ("secret_retired", kid)


async def test_an_expired_token_names_its_key(make_gw: GwFactory) -> None:
    gw = await make_gw(tokens={"leeway": 0})
    await gw.key("agent")
    ident = gw.store.get("agent")
    short, _, _ = gw.store.issue_token(ident, 1, 3600)
    await asyncio.sleep(1.2)
    assert await _refused(gw, bearer(short)) == ("expired", ident.kid)
    # A token whose signing secret is gone names no key: nothing vouches for its payload.
    live, _, _ = gw.store.issue_token(ident, 3600, 3600)
    await gw.store.rotate_signing_secret(0)
    assert await _refused(gw, bearer(live)) == ("invalid_token", None)
