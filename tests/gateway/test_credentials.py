"""HTTP Basic and time-limited tokens at the gateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib

import aiohttp
import openai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localai_authd.gateway import credentials
from localai_authd.keys import tokens as tok
from tests.conftest import GW, GwFactory, raw_request, requires, status_of

TOKEN_URL = "/localai-authd/token"


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def _get(url: str, headers: dict[str, str], path: str = "/api/tags") -> int:
    async with aiohttp.ClientSession() as s, s.get(url + path, headers=headers) as r:
        return r.status


# ---- Basic ------------------------------------------------------------------------------------


@requires("curl")
async def test_basic_with_real_curl_on_loopback(gw: GW) -> None:
    key = await gw.key("laptop")
    # The gateway runs in this event loop: the subprocess must not block it.
    p = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        f"laptop:{key}",
        gw.url + "/api/tags",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(p.communicate(), 30)
    assert out == b"200"
    assert (await gw.records(1))[-1]["auth"] == "basic"


async def test_basic_needs_the_right_name(gw: GW) -> None:
    key = await gw.key("laptop")
    await gw.key("other")
    assert await _get(gw.url, _basic("other", key)) == 401
    assert await _get(gw.url, _basic("nobody", key)) == 401
    assert await _get(gw.url, _basic("laptop", key + "x")) == 401
    assert await _get(gw.url, _basic("laptop", key)) == 200


async def test_401_carries_the_basic_challenge_where_basic_is_accepted(gw: GW) -> None:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/api/tags") as r:
        challenges = r.headers.getall("WWW-Authenticate")
    assert challenges == [
        'Bearer realm="localai-authd"',
        'Basic realm="localai-authd", charset="UTF-8"',
    ]


async def test_malformed_basic_is_400(gw: GW) -> None:
    for value in (
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic",
        "Basic YQ",
        "Basic " + base64.b64encode(b":secret").decode(),
    ):
        resp = await raw_request(
            gw.port, f"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\n\r\n".encode()
        )
        assert status_of(resp) == 400, value
    assert gw.upstream.seen == []


async def test_basic_can_be_turned_off_per_listener(make_gw: GwFactory) -> None:
    g = await make_gw(listener={"address": "127.0.0.1:1", "basic_auth": False})
    key = await g.key("laptop")
    async with (
        aiohttp.ClientSession() as s,
        s.get(g.url + "/api/tags", headers=_basic("laptop", key)) as r,
    ):
        assert r.status == 401
        assert "turned off" in (await r.json())["error"]
        assert len(r.headers.getall("WWW-Authenticate")) == 1  # no Basic challenge


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_basic_parser_never_raises_anything_but_malformed(data: bytes) -> None:
    value = "Basic " + data.decode("latin-1")
    with contextlib.suppress(credentials.MalformedCredentials):
        credentials.extract_from([value], [])
    b64 = "Basic " + base64.b64encode(data).decode()
    with contextlib.suppress(credentials.MalformedCredentials):
        credentials.extract_from([b64], [])


# ---- tokens -----------------------------------------------------------------------------------


async def _exchange(
    url: str, headers: dict[str, str], body: dict | None = None
) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + TOKEN_URL, json=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_exchange_a_key_for_a_token_and_refresh_it(gw: GW) -> None:
    key = await gw.key("agent")
    status, doc = await _exchange(gw.url, {"Authorization": f"Bearer {key}"}, {"ttl": "10m"})
    assert status == 200 and doc["token_type"] == "Bearer"
    token = doc["token"]
    assert token.startswith("tk_local_") and 590 <= doc["expires_in"] <= 600
    assert await _get(gw.url, {"Authorization": f"Bearer {token}"}) == 200
    assert await _get(gw.url, {"x-api-key": token}) == 200
    status, doc2 = await _exchange(gw.url, {"Authorization": f"Bearer {token}"})  # refresh
    assert status == 200 and doc2["token"] != token
    assert await _get(gw.url, {"Authorization": f"Bearer {doc2['token']}"}) == 200
    recs = [r for r in gw.audit() if r["path"] == TOKEN_URL]
    assert recs[0]["reason"] == "token_issued" and recs[0]["key"] == "agent"
    assert token not in gw.audit_path.read_text()


async def test_openai_client_streams_with_a_token(gw: GW) -> None:
    key = await gw.key("agent")
    _, doc = await _exchange(gw.url, {"Authorization": f"Bearer {key}"})
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=doc["token"], max_retries=0)
    stream = await client.chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([ev.choices[0].delta.content or "" async for ev in stream if ev.choices])
    await client.close()
    assert text.startswith("tok0 ")


async def test_expired_token_and_token_of_a_revoked_key_get_401(make_gw: GwFactory) -> None:
    g = await make_gw(tokens={"leeway": 0})
    key = await g.key("agent")
    _, short = await _exchange(g.url, {"Authorization": f"Bearer {key}"}, {"ttl": 1})
    _, long = await _exchange(g.url, {"Authorization": f"Bearer {key}"})
    await asyncio.sleep(2.1)
    assert await _get(g.url, {"Authorization": f"Bearer {short['token']}"}) == 401
    assert await _get(g.url, {"Authorization": f"Bearer {long['token']}"}) == 200
    await g.store.revoke("agent")
    assert await _get(g.url, {"Authorization": f"Bearer {long['token']}"}) == 401


async def test_rotating_the_key_past_grace_ends_its_tokens(gw: GW) -> None:
    key = await gw.key("agent")
    _, doc = await _exchange(gw.url, {"Authorization": f"Bearer {key}"})
    issued = await gw.store.rotate("agent", grace=3600)
    assert await _get(gw.url, {"Authorization": f"Bearer {doc['token']}"}) == 200  # in grace
    _, new_doc = await _exchange(gw.url, {"Authorization": f"Bearer {issued.key}"})
    await gw.store.rotate("agent", grace=0)
    for t in (doc["token"], new_doc["token"]):
        assert await _get(gw.url, {"Authorization": f"Bearer {t}"}) == 401


async def test_signing_secret_rotation_with_grace(gw: GW) -> None:
    ident = (await gw.store.create("agent")).identity
    old_token, _, _ = gw.store.issue_token(ident, 600, 86400)
    # Inside a grace no busy machine can outlast: both secrets' tokens work.
    await gw.store.rotate_signing_secret(grace=3600)
    new_token, _, _ = gw.store.issue_token(ident, 600, 86400)
    assert old_token[9:17] != new_token[9:17]  # a new signing-secret id
    for t in (old_token, new_token):
        assert await _get(gw.url, {"Authorization": f"Bearer {t}"}) == 200
    # A short grace, then past it (a sleep can only make it later): a rotation's grace caps
    # every older secret's end, so both older secrets' tokens die; the newest one lives.
    await gw.store.rotate_signing_secret(grace=1)
    newest, _, _ = gw.store.issue_token(ident, 600, 86400)
    await asyncio.sleep(2)
    assert await _get(gw.url, {"Authorization": f"Bearer {new_token}"}) == 401
    assert await _get(gw.url, {"Authorization": f"Bearer {old_token}"}) == 401
    assert await _get(gw.url, {"Authorization": f"Bearer {newest}"}) == 200


async def test_token_scopes_narrow_and_never_widen(gw: GW) -> None:
    key = await gw.key("ops", scopes=("inference", "admin"))
    h = {"Authorization": f"Bearer {key}"}
    status, doc = await _exchange(gw.url, h, {"scopes": ["inference"]})
    assert status == 200 and doc["scopes"] == ["inference"]
    th = {"Authorization": f"Bearer {doc['token']}"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.url + "/api/pull", json={"model": "x"}, headers=th) as r,
    ):
        assert r.status == 403
    status, _ = await _exchange(gw.url, th, {"scopes": ["admin"]})  # refresh can't widen
    assert status == 403
    user = await gw.key("user")
    status, _ = await _exchange(gw.url, {"Authorization": f"Bearer {user}"}, {"scopes": ["admin"]})
    assert status == 403


async def test_token_lifetime_is_capped(make_gw: GwFactory) -> None:
    g = await make_gw(tokens={"max_ttl": "1h", "default_ttl": "10m"})
    key = await g.key("agent")
    status, doc = await _exchange(g.url, {"Authorization": f"Bearer {key}"}, {"ttl": "2h"})
    assert status == 400 and "at most" in doc["error"]
    status, doc = await _exchange(g.url, {"Authorization": f"Bearer {key}"}, {"bogus": 1})
    assert status == 400


async def test_tampered_truncated_repadded_tokens_are_401(gw: GW) -> None:
    key = await gw.key("agent")
    _, doc = await _exchange(gw.url, {"Authorization": f"Bearer {key}"})
    t = doc["token"]
    head, sig = t[: -tok.SIG_LEN], t[-tok.SIG_LEN :]
    flip = "A" if sig[0] != "A" else "B"
    payload = head[len(tok.PREFIX) + tok.SKID_LEN :]
    bad = [
        t[:-1],
        t[:-5],
        t + "A",
        head + flip + sig[1:],
        t.replace("tk_local_", "tk_locaL_"),
        head + sig + "==",
        head[:-1] + sig,
        t[:9] + "ffffffff" + t[17:],
        t[: len(tok.PREFIX) + tok.SKID_LEN] + payload + "=" + sig,
        t[: len(tok.PREFIX) + tok.SKID_LEN] + payload.replace("_", "/") + sig,
    ]
    for b in bad:
        if b == t:
            continue
        assert await _get(gw.url, {"Authorization": f"Bearer {b}"}) == 401, b
    assert gw.upstream.seen == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_token_parser_never_raises(text: str) -> None:
    secret = tok.SigningSecret("00000000", b"k" * 32, 0.0)
    assert tok.verify("tk_local_" + text, {"00000000": secret}, 1e9, 30, 86400) is None
    assert tok.verify(text, {"00000000": secret}, 1e9, 30, 86400) is None


def test_a_forged_far_future_expiry_is_refused() -> None:
    secret = tok.SigningSecret("00000000", b"k" * 32, 0.0)
    far = tok.mint(secret, tok.Claims("kid", "vid", 1000, 1000 + 10 * 86400, None))
    assert tok.verify(far, {"00000000": secret}, 1001, 30, 86400) is None
    ok = tok.mint(secret, tok.Claims("kid", "vid", 1000, 1000 + 3600, None))
    assert tok.verify(ok, {"00000000": secret}, 1001, 30, 86400) is not None
