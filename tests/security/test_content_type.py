"""The upstream reads the body as JSON, whatever Content-Type the client sent.

The gateway reads every model route's body as JSON regardless of its Content-Type (so does
Ollama: gin's ShouldBindJSON; and ``curl -d`` sends ``application/x-www-form-urlencoded``).
Servers built on echo's DefaultBinder (LocalAI) or fiber's BodyParser bind by Content-Type
instead: the same bytes as a form bind ``model=secret`` from inside a JSON string the gateway
took for an allowed request. Against a Go upstream that binds as those do
(``-form-binding``), no Content-Type may make it act on another model than the one checked.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localai_authd.keys.store import KeyStore
from tests.security.conftest import GoUpstream, gateway_to

ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/generate"]
FORM_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
    "application/x-www-form-urlencoded ; charset=latin1",
]
SMUGGLED = [
    "&model=secret&",
    "&Model=secret&",
    "&MODEL=secret",
    "&mod%65l=secret&",
    "&model=secret",
]


@pytest.fixture
async def form_gw(
    go_binary: Path, tmp_path: Path, store: KeyStore
) -> AsyncIterator[tuple[str, GoUpstream]]:
    proc = subprocess.Popen([str(go_binary), "-form-binding"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        go = GoUpstream(proc, int(proc.stdout.readline().split()[1]))
        async with gateway_to(go.url, store, tmp_path / "audit.jsonl") as url:
            yield url, go
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def limited(store: KeyStore) -> str:
    return (await store.create("limited", models=("llama3*",))).key


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    ctype=st.sampled_from(FORM_TYPES),
    smuggled=st.sampled_from(SMUGGLED),
    field=st.sampled_from(["prompt", "input", "user", "suffix"]),
    model_first=st.booleans(),
)
async def test_no_content_type_makes_the_upstream_read_another_model(
    form_gw: tuple[str, GoUpstream],
    limited: str,
    route: str,
    ctype: str,
    smuggled: str,
    field: str,
    model_first: bool,
) -> None:
    url, go = form_gw
    text = f'"{field}":"x{smuggled}"'
    body = "{" + (f'"model":"llama3",{text}' if model_first else f'{text},"model":"llama3"') + "}"
    before = len(go.log())
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + route,
            data=body.encode(),
            headers={"Authorization": f"Bearer {limited}", "Content-Type": ctype},
        ) as r,
    ):
        status = r.status
    new = go.log()[before:]
    assert status == 200 and len(new) == 1, (status, new)
    assert new[0]["acted"] == ["registry.ollama.ai/library/llama3:latest"], (body, ctype)
