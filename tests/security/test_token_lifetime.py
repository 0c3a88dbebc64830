"""A token never outlives its key's expiry, and says so.

A token dies with its key at verification time, but one issued past the key's expiry
carried (and answered) an ``expires_at`` that was false, and came back to life when the key
was later given a longer expiry with ``authctl set``: a token for a key that was meant to end
on Friday worked again on Monday. Tokens are capped at the key's expiry when issued (by
``authctl token``, by exchange and by refresh), so they end with it for good.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from localai_authd.errors import Conflict
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from tests.conftest import GW
from tests.gateway.test_token_endpoint import assert_reply_is_the_token, exchange

MAX_TTL = 86400.0
LEEWAY = 30.0


class Clock:
    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[KeyStore, Clock]]:
    clock = Clock()
    s = KeyStore(open_vault("file", tmp_path / "state"), clock=clock)
    await s.load()
    yield s, clock
    await s.close()


@pytest.mark.parametrize("key_left", [1.5, 59, 600, 3599.9, 7200])
@pytest.mark.parametrize("ttl", [60, 3600, MAX_TTL])
@pytest.mark.parametrize("refresh", [False, True])
async def test_a_token_ends_with_its_key_even_after_the_key_is_extended(
    clocked: tuple[KeyStore, Clock], key_left: float, ttl: float, refresh: bool
) -> None:
    store, clock = clocked
    ident = (await store.create("k", expires=clock.t + key_left)).identity
    token, exp, _ = store.issue_token(ident, ttl, MAX_TTL)
    if refresh:  # a refresh through the token's own identity, as the endpoint does
        v = store.check_token(token, LEEWAY, MAX_TTL)
        assert v.identity is not None
        claims = store.token_claims(token, LEEWAY, MAX_TTL)
        assert claims is not None
        token, exp, _ = store.issue_token(v.identity, ttl, MAX_TTL, None, claims.vid)
    assert exp <= ident.expires, "the token claims to outlive its key"
    assert exp == min(int(clock.t + ttl), int(ident.expires))  # (exp is a whole second)
    # The key runs out; an operator then extends it (or it was a mistake and is fixed).
    clock.t = ident.expires + LEEWAY + 1
    assert store.check_token(token, LEEWAY, MAX_TTL).identity is None
    await store.edit("k", expires=clock.t + 30 * 86400)
    assert store.check_token(token, LEEWAY, MAX_TTL).identity is None
    # A new token for the extended key works, within the new expiry.
    fresh, fresh_exp, _ = store.issue_token(store.get("k"), ttl, MAX_TTL)
    assert store.check_token(fresh, LEEWAY, MAX_TTL).reason == "ok"
    assert fresh_exp <= clock.t + 30 * 86400


async def test_no_token_for_a_key_ending_within_the_second(
    clocked: tuple[KeyStore, Clock],
) -> None:
    store, clock = clocked
    ident = (await store.create("k", expires=clock.t + 0.5)).identity
    with pytest.raises(Conflict):
        store.issue_token(ident, 60, MAX_TTL)


@pytest.mark.parametrize("ttl", ["1h", 86400])
async def test_the_token_endpoint_answers_the_capped_expiry(gw: GW, ttl: str | int) -> None:
    key_expiry = time.time() + 120
    key = (await gw.store.create("k", expires=key_expiry)).key
    status, doc = await exchange(gw.url, key, {"ttl": ttl})
    assert status == 200, doc
    claims = assert_reply_is_the_token(doc)
    assert claims["e"] <= key_expiry
    assert doc["expires_in"] <= 120
    status, again = await exchange(gw.url, doc["token"], {"ttl": ttl})  # refresh
    assert status == 200, again
    assert assert_reply_is_the_token(again)["e"] <= key_expiry
