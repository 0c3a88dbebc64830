"""Every field that names a model is checked, as a parsed reference, against a real Go upstream."""

from __future__ import annotations

from typing import Any

import aiohttp
import ollama
import pytest

from tests.security.conftest import GoGW

DENIED: list[tuple[str, str, dict[str, Any], str]] = [
    # (method, path, body, reason)
    ("POST", "/api/pull", {"model": "llama3.attacker.example/x/y:latest"}, "model_not_allowed"),
    ("POST", "/api/pull", {"model": "llama3.attacker.example/x/y"}, "model_not_allowed"),
    ("POST", "/api/pull", {"name": "evil/llama3"}, "model_not_allowed"),
    ("POST", "/api/pull", {"model": "llama3", "name": "secret"}, "model_not_allowed"),
    ("POST", "/api/push", {"model": "llama3.attacker.example/x/llama3"}, "model_not_allowed"),
    ("POST", "/api/generate", {"model": "llama3:cloud"}, "model_not_allowed"),
    ("POST", "/api/generate", {"model": " secret"}, "model_not_allowed"),
    ("POST", "/api/generate", {"prompt": "no model: the server's default"}, "model_unknown"),
    ("POST", "/api/show", {"model": "", "name": "secret"}, "model_not_allowed"),
    ("POST", "/api/copy", {"source": "secret", "destination": "llama3-x"}, "model_not_allowed"),
    ("POST", "/api/copy", {"source": "llama3", "destination": "secret"}, "model_not_allowed"),
    ("POST", "/api/copy", {"source": "llama3"}, "model_unknown"),
    ("DELETE", "/api/delete", {"name": "secret"}, "model_not_allowed"),
    ("POST", "/api/create", {"model": "llama3-x", "from": "secret"}, "model_not_allowed"),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "from": "evil.example/x/llama3"},
        "model_not_allowed",
    ),
    ("POST", "/api/create", {"model": "secret-x", "from": "llama3"}, "model_not_allowed"),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "files": {"m.gguf": "sha256:" + "0" * 64}},
        "field_not_allowed:files",
    ),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "adapters": {"a": "sha256:" + "0" * 64}},
        "field_not_allowed:adapters",
    ),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "from": "llama3", "remote_host": "http://x"},
        "field_not_allowed:remote_host",
    ),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "modelfile": "FROM secret"},
        "field_not_allowed:modelfile",
    ),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "path": "/etc/Modelfile"},
        "field_not_allowed:path",
    ),
    ("POST", "/v1/chat/completions", {"model": "secret", "messages": []}, "model_not_allowed"),
    ("POST", "/v1/responses", {"model": "evil/llama3", "input": "x"}, "model_not_allowed"),
]

ALLOWED: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("POST", "/api/pull", {"model": "llama3:8b"}, ["registry.ollama.ai/library/llama3:8b"]),
    ("POST", "/api/show", {"name": "LLAMA3"}, ["registry.ollama.ai/library/llama3:latest"]),
    (
        "POST",
        "/api/copy",
        {"source": "llama3", "destination": "llama3-copy"},
        [
            "registry.ollama.ai/library/llama3:latest",
            "registry.ollama.ai/library/llama3-copy:latest",
        ],
    ),
    (
        "POST",
        "/api/create",
        {"model": "llama3-x", "from": "llama3:8b", "system": "hi"},
        ["registry.ollama.ai/library/llama3-x:latest", "registry.ollama.ai/library/llama3:8b"],
    ),
    (
        "DELETE",
        "/api/delete",
        {"model": "llama3-x"},
        ["registry.ollama.ai/library/llama3-x:latest"],
    ),
    (
        "POST",
        "/v1/embeddings",
        {"model": "llama3", "input": "x"},
        ["registry.ollama.ai/library/llama3:latest"],
    ),
]


async def _send(
    gw: GoGW, key: str, method: str, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gw.url + path, json=body, headers={"x-api-key": key}) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(("method", "path", "body", "reason"), DENIED)
async def test_denied(
    go_gw: GoGW, method: str, path: str, body: dict[str, Any], reason: str
) -> None:
    key = (await go_gw.store.create("k", scopes=("inference", "admin"), models=("llama3*",))).key
    status, doc = await _send(go_gw, key, method, path, body)
    assert status == 403, doc
    assert go_gw.go.log() == []
    assert go_gw.audit()[-1]["reason"] == reason


@pytest.mark.parametrize(("method", "path", "body", "acted"), ALLOWED)
async def test_allowed_and_acted_on_exactly(
    go_gw: GoGW, method: str, path: str, body: dict[str, Any], acted: list[str]
) -> None:
    key = (await go_gw.store.create("k", scopes=("inference", "admin"), models=("llama3*",))).key
    status, doc = await _send(go_gw, key, method, path, body)
    assert status == 200, doc
    assert [e["acted"] for e in go_gw.go.log()] == [acted]


async def test_unlimited_keys_keep_the_fields_limited_keys_lose(go_gw: GoGW) -> None:
    key = (await go_gw.store.create("k", scopes=("inference", "admin"))).key
    body = {"model": "x", "files": {"m.gguf": "sha256:" + "0" * 64}, "remote_host": ""}
    status, doc = await _send(go_gw, key, "POST", "/api/create", body)
    assert status == 200 and doc["files"] == 1


async def test_go_listings_are_filtered(go_gw: GoGW) -> None:
    key = (await go_gw.store.create("k", models=("llama3*",))).key
    async with aiohttp.ClientSession() as http:
        async with http.get(go_gw.url + "/api/tags", headers={"x-api-key": key}) as r:
            assert [m["name"] for m in (await r.json())["models"]] == [
                "llama3:latest",
                "llama3.1:70b",
            ]
        async with http.get(go_gw.url + "/v1/models", headers={"x-api-key": key}) as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["llama3:latest", "llama3.1:70b"]


async def test_the_ollama_sdk_passes_the_body_checks_on_every_model_route(go_gw: GoGW) -> None:
    """The strict reading refuses nothing a real client sends."""
    key = (await go_gw.store.create("k", scopes=("inference", "admin"), models=("llama3*",))).key
    c = ollama.AsyncClient(host=go_gw.url, headers={"x-api-key": key})
    await c.generate(model="llama3", prompt="hi", stream=False, options={"num_ctx": 8})
    await c.chat(model="llama3", messages=[{"role": "user", "content": "x"}], stream=False)
    await c.embed(model="llama3", input=["a", "b"])
    await c.embeddings(model="llama3", prompt="a")
    await c.show("llama3")
    await c.pull("llama3:8b", stream=False)
    await c.copy("llama3", "llama3-b")
    await c.create(model="llama3-c", from_="llama3", system="x", stream=False)
    await c.delete("llama3-b")
    await c.close()
    assert [e["path"] for e in go_gw.go.log()] == [
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/api/pull",
        "/api/copy",
        "/api/create",
        "/api/delete",
    ]
