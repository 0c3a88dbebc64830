"""Bodies the gateway cannot inspect are 400 (or 413), never 500, and audited as what they are."""

from __future__ import annotations

import codecs
import gzip
import io
import json

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GW, GwFactory

HOSTILE = [
    (b"[" * 100_000, "body_too_deep"),
    (b'{"a":' * 100_000, "body_too_deep"),
    (b'[{"a":' * 50_000, "body_too_deep"),
    (b"[{" * 50_000, "body_not_json"),
    (b"[" * 100_000 + b"]" * 100_000, "body_too_deep"),
    (b'{"model":"llama3","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "body_too_deep"),
    (b'{"model":"llama3","n":' + b"1" * 5000 + b"}", "number_out_of_range"),
    (b'{"model":"llama3","n":1e999}', "number_out_of_range"),
    (b'{"model":"llama3","n":-1e999}', "number_out_of_range"),
    (b'{"model":"llama3","n":NaN}', "number_out_of_range"),
    (b'{"model":"llama3","n":Infinity}', "number_out_of_range"),
    (b'{"model":"llama3","n":-Infinity}', "number_out_of_range"),
    (b'{"model":"llama3\xff"}', "body_not_utf8"),
    (b'{"model":"llama3","p":"\xed\xa0\x80"}', "body_not_utf8"),  # an encoded surrogate
    (b'{"model":"llama3","p":"\xc0\xaf"}', "body_not_utf8"),  # overlong "/"
    (codecs.BOM_UTF8 + b'{"model":"llama3"}', "body_not_json"),
    ('{"model":"llama3"}'.encode("utf-16"), "body_not_utf8"),
    ('{"model":"llama3"}'.encode("utf-16-le"), "body_not_json"),
    (b"[]", "body_not_object"),
    (b'"llama3"', "body_not_object"),
    (b"1", "body_not_object"),
    (b"null", "body_not_object"),
    (b"true", "body_not_object"),
    (b"", "body_empty"),
    (b"  \r\n\t", "body_empty"),
    (b'{"model":', "body_not_json"),
    (b'{"model":"llama3",}', "body_not_json"),
    (b"{'model':'llama3'}", "body_not_json"),
    (b'{"model":"llama3"}\x00', "body_trailing_data"),
    (b'{"model":["llama3"]}', "model_not_string"),
    (b'{"model":{"name":"llama3"}}', "model_not_string"),
    (b'{"model":7}', "model_not_string"),
]


async def _post(gw: GW, key: str, raw: bytes, path: str = "/api/generate") -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, data=io.BytesIO(raw), headers={"x-api-key": key}) as r,
    ):
        await r.read()
        return r.status


@pytest.fixture
async def big_gw(make_gw: GwFactory) -> GW:
    return await make_gw(max_body_bytes=1 << 20)


@pytest.mark.parametrize("limited", [True, False])
@pytest.mark.parametrize(("raw", "reason"), HOSTILE, ids=[r for _, r in HOSTILE])
async def test_hostile_bodies(big_gw: GW, raw: bytes, reason: str, limited: bool) -> None:
    key = await big_gw.key("k", models=("llama3*",) if limited else ())
    assert await _post(big_gw, key, raw) == 400
    assert big_gw.upstream.seen == []
    (rec,) = big_gw.audit()
    assert (rec["status"], rec["outcome"], rec["reason"]) == (
        400,
        "bad_request",
        f"invalid_request:{reason}",
    )


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-custom", "identity, gzip"])
async def test_encoded_bodies_are_refused(big_gw: GW, encoding: str) -> None:
    """An upstream (or a proxy before it) that inflates would act on bytes nobody checked.
    (aiohttp's own parser inflates gzip/deflate before the gateway reads; an encoding it
    does not know, such as br without brotli installed, it refuses itself.)"""
    key = await big_gw.key("k", models=("llama3*",))
    raw = gzip.compress(b'{"model":"secret"}') if "gzip" in encoding else b'{"model":"llama3"}'
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            big_gw.url + "/api/generate",
            data=raw,
            headers={"x-api-key": key, "Content-Encoding": encoding},
        ) as r,
    ):
        assert r.status == 400
    assert big_gw.upstream.seen == []
    assert big_gw.audit()[0]["reason"] == "invalid_request:body_encoded"


async def test_over_the_size_limit_is_413(big_gw: GW) -> None:
    key = await big_gw.key()
    assert await _post(big_gw, key, b"[" * ((1 << 20) + 1)) == 413
    assert big_gw.audit()[0]["outcome"] == "bad_request"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "object", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        opener = draw(st.sampled_from([b"[", b'{"a":', b"[{", b'{"model":"llama3","x":[']))
        return opener * draw(st.integers(900, 20_000))
    value: object = draw(_json)
    if kind == "object":
        value = {"model": draw(st.sampled_from(["llama3", "secret", 1, None])), "x": value}
    return json.dumps(value, allow_nan=True).encode()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies())
async def test_no_body_is_a_500_and_every_record_is_truthful(big_gw: GW, raw: bytes) -> None:
    key = await big_gw.key(f"k{len(big_gw.audit())}", models=("llama3*",))
    before = len(big_gw.upstream.seen)
    status = await _post(big_gw, key, raw)
    assert status in (200, 400, 403), raw[:80]
    rec = big_gw.audit()[-1]
    assert rec["status"] == status
    if status == 400:
        assert rec["outcome"] == "bad_request" and rec["reason"].startswith("invalid_request:")
        assert len(big_gw.upstream.seen) == before
    elif status == 403:
        assert rec["outcome"] == "denied"
        assert len(big_gw.upstream.seen) == before
    else:
        assert rec["outcome"] == "ok" and json.loads(raw)["model"] == "llama3"
