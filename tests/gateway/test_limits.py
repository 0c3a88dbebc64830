"""Per-key limits at the gateway: requests per minute, token budgets, concurrent streams.

A real gateway and a real upstream that reports usage like Ollama and OpenAI do; limits set
through the config (the defaults every key gets), as a reload would apply them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage

from localai_authd.gateway.limits import Limiter, effective
from localai_authd.keys.model import Limits
from localai_authd.limitsconfig import LimitsConfig
from tests.conftest import GW, GwFactory
from tests.gateway.usage_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, UsageUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[UsageUpstream]:
    up = UsageUpstream()
    await up.start()
    yield up
    up.release.set()
    await up.stop()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _limited_gw(make_gw: GwFactory, **limits: Any) -> GW:
    gw = await make_gw()
    cfg = gw.gateway.cfg
    gw.gateway.apply_config(dataclasses.replace(cfg, limits=LimitsConfig(**limits)))
    return gw


async def _wait_audit(gw: GW, n: int) -> list[dict[str, Any]]:
    for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
        recs = gw.audit()
        if len(recs) >= n:
            return recs
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} audit records, got {gw.audit()}")


async def _settle(gw: GW) -> None:
    """Token charges run after the answer has ended: wait for them."""
    for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
        if not gw.gateway.admission.pending:
            return
        await asyncio.sleep(0.01)


async def test_requests_per_minute_429_with_retry_after_in_each_dialect(
    make_gw: GwFactory, http: Any
) -> None:
    gw = await _limited_gw(make_gw, requests_per_minute=3)
    key = await gw.key()
    for _ in range(3):
        async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
            assert r.status == 200
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 429
        retry = r.headers["Retry-After"]
        assert retry.isdigit() and 1 <= int(retry) <= 60
        body = await r.json()
        assert isinstance(body["error"], str) and "requests per minute" in body["error"]
    async with http.get(gw.url + "/v1/models", headers=_h(key)) as r:
        assert r.status == 429
        err = (await r.json())["error"]
        assert err["type"] == "rate_limit_error"
        assert err["code"] == "limit:requests_per_minute"
    recs = await _wait_audit(gw, 5)
    assert [r["status"] for r in recs] == [200, 200, 200, 429, 429]
    assert recs[-1]["reason"] == "limit:requests_per_minute"
    assert recs[-1]["outcome"] == "rate_limited"
    assert len(gw.upstream.seen) == 3  # the refused ones never reached it
    # Another key has its own window.
    other = await gw.key("other")
    async with http.get(gw.url + "/api/tags", headers=_h(other)) as r:
        assert r.status == 200


async def test_ollama_tokens_counted_from_final_chunk_and_budget_enforced(
    make_gw: GwFactory, http: Any
) -> None:
    budget = PROMPT_TOKENS + COMPLETION_TOKENS + 1  # one request leaves 1 token
    gw = await _limited_gw(make_gw, tokens_per_minute=budget)
    key = await gw.key()
    body = {"model": "llama3", "prompt": "hi"}
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert r.status == 200
        await r.read()
    await _settle(gw)
    rec = (await _wait_audit(gw, 1))[0]
    assert (rec["tokens_in"], rec["tokens_out"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert rec["tokens_estimated"] is False and rec["stream"] is True
    # Not yet exhausted (1 token left): admitted; its 12 tokens overdraw the budget.
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert r.status == 200
        await r.read()
    await _settle(gw)
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert "token budget" in (await r.json())["error"]
    recs = await _wait_audit(gw, 3)
    assert recs[-1]["reason"] == "limit:tokens_per_minute"


async def test_openai_stream_usage_counted_when_client_asks_for_it(
    make_gw: GwFactory, http: Any
) -> None:
    gw = await _limited_gw(make_gw, tokens_per_day=10_000)
    key = await gw.key()
    ask = {"model": "llama3", "messages": [], "stream": True}
    with_usage = {**ask, "stream_options": {"include_usage": True}}
    for body in (with_usage, ask, {"model": "llama3", "messages": []}):
        async with http.post(gw.url + "/v1/chat/completions", json=body, headers=_h(key)) as r:
            assert r.status == 200
            await r.read()
    recs = await _wait_audit(gw, 3)
    exact, guessed, whole = recs
    assert (exact["tokens_in"], exact["tokens_out"], exact["tokens_estimated"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        False,
    )
    # No usage in the stream: one token per event (5 deltas + the stop event + [DONE]),
    # prompt = request bytes / 4; marked as an estimate.
    assert guessed["tokens_estimated"] is True
    assert guessed["tokens_out"] == COMPLETION_TOKENS + 2
    assert guessed["tokens_in"] == (guessed["bytes_in"] + 3) // 4
    assert (whole["tokens_in"], whole["tokens_out"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert "stream" not in whole


async def test_usage_found_after_a_long_stream_without_buffering(
    make_gw: GwFactory, http: Any
) -> None:
    gw = await _limited_gw(make_gw)
    gw.upstream.filler = 40_000  # each chunk alone is larger than the meter's tail
    key = await gw.key()
    body = {"model": "llama3", "prompt": "hi"}
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert len(await r.read()) > 5 * 40_000
    rec = (await _wait_audit(gw, 1))[0]
    assert (rec["tokens_in"], rec["tokens_out"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)


async def test_concurrent_streams_limit(make_gw: GwFactory, http: Any) -> None:
    gw = await _limited_gw(make_gw, concurrent_streams=1)
    key = await gw.key()
    gw.upstream.hold_after = 1
    body = {"model": "llama3", "prompt": "hi"}
    first = await http.post(gw.url + "/api/generate", json=body, headers=_h(key))
    assert first.status == 200
    await asyncio.wait_for(first.content.readany(), 30)
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await r.json())["error"].startswith("this key already has 1 requests in flight")
    gw.upstream.release.set()
    await first.read()
    first.release()
    async with http.post(gw.url + "/api/generate", json=body, headers=_h(key)) as r:
        assert r.status == 200
        await r.read()
    reasons = [x["reason"] for x in await _wait_audit(gw, 3)]
    assert "limit:concurrent_streams" in reasons


class BrokenStorage(MemoryStorage):
    """A storage whose backend is gone (as a Redis that cannot be reached would be): every
    window operation raises, as the library's Redis storage raises ConnectionError."""

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        raise ConnectionError("storage unreachable")

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        raise ConnectionError("storage unreachable")


@pytest.mark.parametrize("limit", ["requests_per_minute", "tokens_per_minute"])
async def test_a_failing_limiter_refuses_never_waves_through(
    make_gw: GwFactory, http: Any, limit: str
) -> None:
    gw = await _limited_gw(make_gw, **{limit: 100})
    gw.gateway.admission.limiter = Limiter(BrokenStorage())
    key = await gw.key()
    async with http.post(
        gw.url + "/v1/chat/completions", json={"model": "llama3"}, headers=_h(key)
    ) as r:
        assert r.status == 503
        assert (await r.json())["error"]["code"] == "limiter_unavailable"
    assert gw.upstream.seen == []
    rec = (await _wait_audit(gw, 1))[0]
    assert rec["reason"] == "limiter_unavailable" and rec["status"] == 503
    assert rec["outcome"] == "unavailable"


async def test_no_limits_no_storage_calls(make_gw: GwFactory, http: Any) -> None:
    """The defaults limit nothing: a broken storage is never consulted."""
    gw = await make_gw()
    gw.gateway.admission.limiter = Limiter(BrokenStorage())
    key = await gw.key()
    async with http.get(gw.url + "/api/tags", headers=_h(key)) as r:
        assert r.status == 200


def test_a_keys_own_limits_win_over_the_defaults() -> None:
    d = LimitsConfig(requests_per_minute=10, tokens_per_day=1000, max_keep_alive=60)
    eff = effective(Limits(requests_per_minute=0, tokens_per_minute=5), d)
    assert eff.requests_per_minute == 0  # 0: no limit for this key
    assert eff.tokens_per_minute == 5
    assert eff.tokens_per_day == 1000
    assert eff.max_keep_alive == 60


async def test_token_units_carry_fractions() -> None:
    """A budget above 1024 tokens is counted in units; small charges add up exactly."""
    lim = Limiter()
    eff = effective(Limits(), LimitsConfig(tokens_per_minute=2048))  # unit = 2 tokens
    for _ in range(1023):
        await lim.charge("k", eff, 2)
    await lim.admit("k", eff, 0)  # 1 unit (2 tokens) left
    await lim.charge("k", eff, 1)
    await lim.admit("k", eff, 0)  # half a unit carried: still 1 unit free
    await lim.charge("k", eff, 1)
    with pytest.raises(Exception, match="token budget") as e:
        await lim.admit("k", eff, 0)
    assert json.dumps(getattr(e.value, "headers", None))


async def test_the_real_sdks_read_usage_and_show_the_429(make_gw: GwFactory) -> None:
    """openai with include_usage is counted exactly; both SDKs surface our 429 message."""
    import ollama
    import openai

    gw = await _limited_gw(make_gw, requests_per_minute=2)
    key = await gw.key()
    oa = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    stream = await oa.chat.completions.create(
        model="llama3",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [ev.usage async for ev in stream if ev.usage is not None]
    assert usage and usage[0].completion_tokens == COMPLETION_TOKENS
    ol = ollama.AsyncClient(host=gw.url, headers={"Authorization": f"Bearer {key}"})
    done = await ol.generate(model="llama3", prompt="hi", stream=False)
    assert done.eval_count == COMPLETION_TOKENS
    with pytest.raises(openai.RateLimitError) as e:
        await oa.chat.completions.create(model="llama3", messages=[])
    assert "requests per minute" in str(e.value)
    assert e.value.response.headers["Retry-After"].isdigit()
    with pytest.raises(ollama.ResponseError) as oe:
        await ol.generate(model="llama3", prompt="hi", stream=False)
    assert oe.value.status_code == 429 and "requests per minute" in oe.value.error
    await oa.close()
    await ol.close()
    recs = await _wait_audit(gw, 4)
    assert (recs[0]["tokens_in"], recs[0]["tokens_estimated"]) == (PROMPT_TOKENS, False)
    assert (recs[1]["tokens_in"], recs[1]["tokens_out"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)


async def test_concurrent_streams_hold_while_the_limiter_yields(
    make_gw: GwFactory, http: Any
) -> None:
    """A storage that yields (as a networked one does) between the stream count and the
    registration must not let two requests past a limit of one."""

    class YieldingStorage(MemoryStorage):
        """Real memory storage; each window operation first yields to the loop, as a
        round trip to Redis would."""

        async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
            await asyncio.sleep(0.01)
            return await super().acquire_entry(key, limit, expiry, amount)

    gw = await _limited_gw(make_gw, concurrent_streams=1, requests_per_minute=100)
    gw.gateway.admission.limiter = Limiter(YieldingStorage())
    gw.upstream.hold_after = 1
    key = await gw.key()
    body = {"model": "llama3", "prompt": "hi"}
    posts = [http.post(gw.url + "/api/generate", json=body, headers=_h(key)) for _ in range(4)]
    responses = await asyncio.gather(*posts)
    assert sorted(r.status for r in responses) == [200, 429, 429, 429]
    assert gw.gateway.in_flight == 1
    gw.upstream.release.set()
    for r in responses:
        await r.read()
        r.release()
    for _ in range(3000):  # bounded (30 s): a liveness bound, never a speed measure
        if gw.gateway.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.gateway.in_flight == 0  # refusals did not unbalance the count
