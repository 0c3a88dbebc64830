"""keep_alive and num_ctx caps: the pure function, and what the upstream receives."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from localai_authd.gateway.caps import BadValue, Caps, apply, go_duration, keep_alive_seconds
from localai_authd.limitsconfig import LimitsConfig
from tests.conftest import GwFactory


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("0", 0),
        ("-1m", -60),
        ("300ms", 0.3),
        ("2h45m10.5s", 9910.5),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "-1", "m", "5 m", "5d", ".s", "1h-5m"])
def test_go_refuses_these_durations(text: str) -> None:
    with pytest.raises(BadValue):
        go_duration(text)


def test_negative_keep_alive_is_forever() -> None:
    assert keep_alive_seconds(-1) == math.inf
    assert keep_alive_seconds("-5m") == math.inf
    assert keep_alive_seconds(30) == 30


CAP = Caps(max_keep_alive=600, max_num_ctx=4096)


@pytest.mark.parametrize("value", [-1, "-1m", 601, "11m", "1h", 1e308])
def test_keep_alive_over_the_cap_is_clamped(value: Any) -> None:
    doc, d = apply({"model": "m", "keep_alive": value}, CAP)
    assert d.changed and doc == {"model": "m", "keep_alive": 600}


@pytest.mark.parametrize("value", [0, 600, "10m", "30s", None])
def test_keep_alive_within_the_cap_is_untouched(value: Any) -> None:
    src = {"model": "m", "keep_alive": value}
    doc, d = apply(src, CAP)
    assert not d.changed and doc is src


def test_every_go_spelling_of_the_key_is_capped() -> None:
    # Go matches keys case-insensitively (simple folding); the last match wins.
    src = {"keep_alive": 5, "KEEP_ALIVE": -1, "Keep_Alive": 1, "\u212aeep_alive": -1}
    doc, d = apply(src, CAP)
    assert d.changed and doc == {"keep_alive": 600}
    src2 = {"model": "m", "OPTIONS": {"num_ctx": 1 << 20}, "options": {"num_ctx": 10}}
    doc2, d2 = apply(src2, CAP)
    assert d2.changed and doc2["OPTIONS"]["num_ctx"] == 4096 and doc2["options"]["num_ctx"] == 10


def test_refuse_mode_and_unparseable_values() -> None:
    refuse = dataclasses.replace(CAP, refuse=True)
    assert apply({"keep_alive": -1}, refuse)[1].refused == "cap:keep_alive"
    assert apply({"options": {"num_ctx": 8192}}, refuse)[1].refused == "cap:num_ctx"
    assert apply({"options": {"num_ctx": float("nan")}}, refuse)[1].refused == "cap:num_ctx"
    assert apply({"keep_alive": "forever"}, CAP)[1].refused == "bad_keep_alive"
    assert not apply({"options": {"num_ctx": 100, "temperature": 1}}, refuse)[1].refused


def test_no_cap_no_change() -> None:
    src = {"keep_alive": -1, "options": {"num_ctx": 1 << 30}}
    assert apply(src, Caps()) == (src, apply(src, Caps())[1])
    assert not apply(src, Caps())[1].changed


async def test_the_upstream_receives_the_clamped_body(make_gw: GwFactory, http: Any) -> None:
    gw = await make_gw()
    cfg = gw.gateway.cfg
    gw.gateway.apply_config(
        dataclasses.replace(cfg, limits=LimitsConfig(max_keep_alive=300, max_num_ctx=2048))
    )
    key = await gw.key()
    body = {"model": "llama3", "prompt": "hi", "keep_alive": -1, "options": {"num_ctx": 65536}}
    h = {"Authorization": f"Bearer {key}"}
    async with http.post(gw.url + "/api/generate", json=body, headers=h) as r:
        assert r.status == 200
        await r.read()
    sent = json.loads(gw.upstream.seen[-1].body)
    assert sent == {**body, "keep_alive": 300, "options": {"num_ctx": 2048}}
    # Refuse mode: 400 in Ollama's dialect, nothing forwarded.
    gw.gateway.apply_config(
        dataclasses.replace(cfg, limits=LimitsConfig(max_keep_alive=300, over_cap="refuse"))
    )
    n = len(gw.upstream.seen)
    async with http.post(gw.url + "/api/generate", json=body, headers=h) as r:
        assert r.status == 400
        assert "keep_alive" in (await r.json())["error"]
    assert len(gw.upstream.seen) == n
    assert gw.audit()[-1]["reason"] == "cap:keep_alive"
