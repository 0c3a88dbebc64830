"""Model lists follow the key: filtered for a key limited to models, with the real SDKs."""

from __future__ import annotations

import json

import aiohttp
import ollama
import openai
import pytest

from localai_authd.gateway import listing
from tests.conftest import GW

ALL = ["llama3:latest", "llama3.1:70b", "mistral:7b", "evil.example/x/llama3:latest"]
MINE = ["llama3:latest", "llama3.1:70b"]


async def test_ollama_sdk_lists_what_the_key_may_use(gw: GW) -> None:
    key = await gw.key("limited", models=("llama3*",))
    client = ollama.AsyncClient(host=gw.url, headers={"Authorization": f"Bearer {key}"})
    listed = await client.list()
    running = await client.ps()
    await client.close()
    assert [m.model for m in listed.models] == MINE
    assert [m.model for m in running.models] == MINE
    for s in gw.upstream.seen[:2]:
        assert dict((k.lower(), v) for k, v in s.headers)["accept-encoding"] == "identity"


async def test_openai_sdk_lists_and_retrieves_what_the_key_may_use(gw: GW) -> None:
    key = await gw.key("limited", models=("llama3*",))
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    ids = [m.id async for m in client.models.list()]
    assert ids == MINE
    got = await client.models.retrieve("llama3.1:70b")
    assert got is not None
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("mistral:7b")
    await client.close()
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.url + "/v1/models/evil.example/x/llama3", headers={"x-api-key": key}) as r,
    ):
        assert r.status == 404  # the SDK would encode the "/" (a 400): a raw client need not
    assert [s.path for s in gw.upstream.seen] == ["/v1/models", "/v1/models/llama3.1:70b"]
    rec = gw.audit()[-1]
    assert (rec["status"], rec["reason"]) == (404, "model_not_allowed")


async def test_an_unlimited_key_sees_everything_untouched(gw: GW) -> None:
    key = await gw.key("any")
    client = ollama.AsyncClient(host=gw.url, headers={"x-api-key": key})
    assert [m.model for m in (await client.list()).models] == ALL
    await client.close()


@pytest.mark.parametrize("path", ["/api/tags", "/api/ps", "/v1/models"])
async def test_gzip_listings_are_filtered_too(gw: GW, path: str) -> None:
    gw.upstream.gzip_listings = True
    key = await gw.key("limited", models=("llama3*",))
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(gw.url + path, headers={"x-api-key": key, "Accept-Encoding": "gzip"}) as r,
    ):
        assert r.status == 200
        assert "Content-Encoding" not in r.headers
        doc = json.loads(await r.read())
    names = (
        [e["id"] for e in doc["data"]]
        if path == "/v1/models"
        else [e["name"] for e in doc["models"]]
    )
    assert names == MINE


async def test_an_unreadable_listing_is_never_passed_on(gw: GW) -> None:
    gw.upstream.models = []  # an upstream with an empty list: fine
    key = await gw.key("limited", models=("llama3*",))
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.url + "/api/tags", headers={"x-api-key": key}) as r,
    ):
        assert r.status == 200 and (await r.json())["models"] == []
    with pytest.raises(ValueError, match="not a model listing"):
        listing.filter_listing({"data": "x"}, "openai", ("*",))
    with pytest.raises(ValueError, match="not a model listing"):
        listing.filter_listing([], "ollama", ("*",))
    # entries without a readable name are dropped, never kept
    doc = {"models": [{"size": 1}, {"name": 3}, {"name": "llama3", "model": "secret"}]}
    assert listing.filter_listing(doc, "ollama", ("llama3*",))["models"] == []


async def test_open_routes_for_a_limited_key(gw: GW) -> None:
    key = await gw.key("limited", models=("llama3*",))
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/api/version", "/health"):
            async with http.get(gw.url + path, headers={"x-api-key": key}) as r:
                assert r.status == 200, path
        async with http.get(gw.url + "/props", headers={"x-api-key": key}) as r:
            assert r.status == 403  # shows the loaded model, which cannot be filtered
