"""The wall clock jumps forward and back under tokens.

Where time is injected: tokens.py is pure (``now`` is an argument) and every token decision
takes ``now`` from the key store's clock, ``KeyStore(vault, clock=time.time)``: issuing at
the token endpoint and ``authctl token``, verifying in the gateway, key expiry. That
constructor argument is the seam, so the clock here is a plain object the test moves, and
everything else is real: the encrypted file keyring, the key store, the gateway on a socket,
HTTP requests. Changing the system clock would disturb every other process on the machine,
and running the daemon under libfaketime would test the same seam less directly.

The rules, with leeway L (clock skew tolerated) for a token issued at I, expiring at E:
valid exactly while I - L <= now < E + L. A clock that goes back never revives a token
beyond those rules, and a token is never accepted more than L before its issue time (a
token minted while the clock ran ahead is refused once the clock is corrected).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from tests.conftest import GW, GwFactory

T0 = 1_900_000_000.0  # an arbitrary "now" (2030): far from the machine's own clock
LEEWAY = 30
TTL = 600


class Clock:
    """Wall-clock time as the key store reads it; the test sets it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[KeyStore]:
    """The shared fixture's key store (real file keyring), reading the test's clock; the
    gateway fixtures pick this one up."""
    s = KeyStore(open_vault("file", tmp_path / "state"), clock=clock)
    await s.load()
    yield s
    await s.close()


@pytest.fixture
async def tgw(make_gw: GwFactory) -> GW:
    return await make_gw(tokens={"leeway": LEEWAY, "max_ttl": 86400})


async def _status(gw: GW, http: aiohttp.ClientSession, credential: str) -> int:
    headers = {"Authorization": f"Bearer {credential}"}
    async with http.get(gw.url + "/api/tags", headers=headers) as r:
        await r.read()
        return r.status


async def _exchange(gw: GW, http: aiohttp.ClientSession, key: str) -> tuple[str, int]:
    """A token from the gateway's own endpoint (the store's clock sets its times)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with http.post(gw.url + "/localai-authd/token", json={"ttl": TTL}, headers=headers) as r:
        assert r.status == 200, await r.text()
        doc = await r.json()
    return doc["token"], doc["expires_at"]


async def test_a_token_lives_exactly_its_window_whichever_way_the_clock_jumps(
    tgw: GW, http: aiohttp.ClientSession, clock: Clock
) -> None:
    key = await tgw.key()
    token, exp = await _exchange(tgw, http, key)
    assert exp == T0 + TTL
    assert await _status(tgw, http, token) == 200

    expected = {
        T0 + TTL + LEEWAY - 1: 200,  # last second of the leeway after expiry
        T0 + TTL + LEEWAY: 401,  # expired
        T0 + 86400 * 365: 401,  # a year ahead
        T0 + TTL + LEEWAY + 1: 401,  # back again, still past the expiry: still refused
        T0 + 60: 200,  # back inside the window: the clock says it is live
        T0 - LEEWAY: 200,  # before its issue time, within the tolerated skew
        T0 - LEEWAY - 1: 401,  # before its issue time beyond the skew
        T0 - 86400 * 365: 401,  # a year back
    }
    for t, want in expected.items():
        clock.t = t
        assert await _status(tgw, http, token) == want, t - T0
    # The key itself never expires and has no issue time: it works at every reading.
    for t in (T0 - 86400 * 365, T0 + 86400 * 365):
        clock.t = t
        assert await _status(tgw, http, key) == 200
    refused = [r for r in tgw.audit() if r["status"] == 401]
    assert len(refused) == 5 and all(r["outcome"] == "unauthenticated" for r in refused)


async def test_a_token_minted_while_the_clock_ran_ahead_is_refused_once_corrected(
    tgw: GW, http: aiohttp.ClientSession, clock: Clock
) -> None:
    key = await tgw.key()
    clock.t = T0 + 7200  # the clock runs two hours fast (a bad NTP step)
    token, _ = await _exchange(tgw, http, key)
    assert await _status(tgw, http, token) == 200
    clock.t = T0  # corrected: the token claims to be issued two hours from now
    assert await _status(tgw, http, token) == 401
    clock.t = T0 + 7200 - LEEWAY  # real time reaches its issue time (less the skew)
    assert await _status(tgw, http, token) == 200


async def test_the_clock_jumping_past_a_keys_expiry_ends_its_tokens_too(
    tgw: GW, http: aiohttp.ClientSession, clock: Clock
) -> None:
    issued = await tgw.store.create("short", expires=T0 + 3600)
    token, exp, _ = tgw.store.issue_token(issued.identity, 7200, 86400)
    assert exp == T0 + 3600  # capped: a token never outlives its key
    assert await _status(tgw, http, token) == 200
    clock.t = T0 + 3600  # the key expires, and with it the token
    assert await _status(tgw, http, issued.key) == 401
    assert await _status(tgw, http, token) == 401
    clock.t = T0 + 3600 - 1  # back: one second before the key's expiry, both in date
    assert await _status(tgw, http, issued.key) == 200
    assert await _status(tgw, http, token) == 200
    # Before the key existed: its token is refused (issued in the future beyond the skew).
    clock.t = T0 - 3600
    assert await _status(tgw, http, token) == 401
