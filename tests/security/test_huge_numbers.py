"""Numbers Python reads exactly and Go cannot: a 400, never a 500.

Python's ``json`` reads an integer literal of any length (up to 4300 digits) as an ``int``;
``float()`` of one past 1.8e308 raises OverflowError. Go decodes the same literal into a
float64 (``keep_alive`` is read into ``any``) and fails: Ollama answers 400. The caps on
``keep_alive`` (on by default: 1 h) and ``options.num_ctx`` read these values, as the token
endpoint reads ``ttl``: each must refuse such a number as a bad request, with a truthful
audit record, never fail inside the gateway.
"""

from __future__ import annotations

import dataclasses
import itertools

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localai_authd.limitsconfig import LimitsConfig
from tests.conftest import GW, GwFactory

# Integer literals around and beyond float64's range, both signs, as JSON text.
huge_ints = st.builds(
    lambda sign, digits, lead: sign + str(lead) + "0" * digits,
    st.sampled_from(["", "-"]),
    st.integers(min_value=300, max_value=1200),
    st.integers(min_value=1, max_value=9),
)
numbers = huge_ints | st.sampled_from(["1e308", "-1e308", "1.7976931348623157e308", "0", "-1"])
_NAMES = itertools.count()  # one store across examples: fresh key names
ROUTES = ["/api/generate", "/api/chat", "/api/embed", "/v1/chat/completions"]


async def _gw(make_gw: GwFactory, over_cap: str) -> GW:
    gw = await make_gw(max_body_bytes=65536)
    limits = LimitsConfig(max_keep_alive=60, max_num_ctx=2048, over_cap=over_cap)
    gw.gateway.apply_config(dataclasses.replace(gw.gateway.cfg, limits=limits))
    return gw


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    number=numbers,
    where=st.sampled_from(["keep_alive", "num_ctx", "both"]),
    route=st.sampled_from(ROUTES),
    over_cap=st.sampled_from(["clamp", "refuse"]),
)
async def test_numbers_go_cannot_read_are_bad_requests(
    make_gw: GwFactory, number: str, where: str, route: str, over_cap: str
) -> None:
    gw = await _gw(make_gw, over_cap)
    key = await gw.key(f"k{next(_NAMES)}")
    fields = []
    if where in ("keep_alive", "both"):
        fields.append(f'"keep_alive":{number}')
    if where in ("num_ctx", "both"):
        fields.append(f'"options":{{"num_ctx":{number}}}')
    body = '{"model":"llama3",' + ",".join(fields) + "}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + route, data=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        status = r.status
        await r.read()
    assert status in (200, 400), (status, body[:80])
    rec = gw.audit()[-1]
    assert rec["status"] == status
    assert (rec["outcome"] == "ok") == (status == 200), rec


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(number=numbers)
async def test_a_token_ttl_go_cannot_read_is_a_bad_request(make_gw: GwFactory, number: str) -> None:
    gw = await make_gw(tokens={"max_ttl": "1h", "default_ttl": "10m"})
    key = await gw.key(f"k{next(_NAMES)}")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url + "/localai-authd/token",
            data='{"ttl":' + number + "}",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as r,
    ):
        status = r.status
        await r.read()
    assert status in (200, 400), (status, number[:40])
    assert gw.audit()[-1]["status"] == status
