"""What `authctl set` and `suspend` store takes effect at the gateway on the next request."""

from __future__ import annotations

import aiohttp

from tests.conftest import GW


async def _status(gw: GW, key: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.url + "/api/generate",
            json={"model": "llama3", "stream": False},
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        await r.read()
        return r.status


async def test_a_per_key_rate_set_later_applies_at_once(gw: GW) -> None:
    key = await gw.key("laptop")
    assert [await _status(gw, key) for _ in range(3)] == [200, 200, 200]  # no default rate
    await gw.store.edit("laptop", limits={"requests_per_minute": 4})
    statuses = [await _status(gw, key) for _ in range(6)]
    assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    assert gw.audit()[-1]["reason"] == "limit:requests_per_minute"
    await gw.store.edit("laptop", limits={"requests_per_minute": None})  # back to the default
    assert await _status(gw, key) == 200


async def test_suspend_refuses_at_once_and_resume_restores(gw: GW) -> None:
    key = await gw.key("laptop")
    assert await _status(gw, key) == 200
    await gw.store.suspend("laptop")
    assert await _status(gw, key) == 401
    rec = gw.audit()[-1]
    assert (rec["reason"], rec["key_id"]) == ("suspended", gw.store.get("laptop").kid)
    await gw.store.resume("laptop")
    assert await _status(gw, key) == 200


async def test_set_narrowing_models_applies_to_live_tokens(gw: GW) -> None:
    key = await gw.key("laptop", scopes=("inference", "admin"))
    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.url + "/localai-authd/token", headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        token = (await r.json())["token"]
    assert await _status(gw, token) == 200
    await gw.store.edit("laptop", models=("qwen*",))
    assert await _status(gw, token) == 403
    await gw.store.edit("laptop", scopes=("admin",))  # the token loses inference too
    await gw.store.edit("laptop", models=())
    assert await _status(gw, token) == 403
