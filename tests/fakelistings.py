"""The fake upstream's listings, shaped like Ollama's and OpenAI's, of the models it is given
(FakeUpstream.models): what a key may see is filtered from these.

/api/tags and /api/ps (Ollama), /v1/models and /v1/models/{id} (OpenAI-compatible, as Ollama
serves them: ids are the full model names; a name without a tag means ":latest"), /api/version
and / (Ollama's "is running").
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

VERSION = "0.6.0"
MODIFIED_AT = "2026-11-29T00:00:00Z"
CREATED = 1764374400  # the same moment, as OpenAI's Unix seconds
LISTINGS = ("/api/tags", "/api/ps", "/v1/models")


def _details(name: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": name.rsplit("/", 1)[-1].split(":")[0],
        "families": None,
        "parameter_size": "8B",
        "quantization_level": "Q4_0",
    }


def _ollama_model(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": MODIFIED_AT,
        "size": 4_661_224_676,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": _details(name),
    }


def tags(models: Sequence[str]) -> dict[str, Any]:
    return {"models": [_ollama_model(m) for m in models]}


def ps(models: Sequence[str]) -> dict[str, Any]:
    """Every model "loaded", with what /api/ps adds to /api/tags' entries."""
    loaded = {"expires_at": "2026-11-29T00:05:00Z", "size_vram": 4_661_224_676}
    return {"models": [{**_ollama_model(m), **loaded} for m in models]}


def openai_model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "library"}


def openai_models(models: Sequence[str]) -> dict[str, Any]:
    return {"object": "list", "data": [openai_model(m) for m in models]}


def find(models: Sequence[str], name: str) -> str | None:
    """A listed model by its name, where a name without a tag means ":latest" (as Ollama)."""
    for m in models:
        if name in (m, m.removesuffix(":latest")):
            return m
    return None


def _json(doc: dict[str, Any], gzipped: bool) -> web.Response:
    if not gzipped:
        return web.json_response(doc)
    return web.Response(
        body=gzip.compress(json.dumps(doc).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def answer(path: str, models: Sequence[str], gzipped: bool = False) -> web.Response | None:
    """The listing at ``path``, or None if ``path`` is not one. ``gzipped``: the three list
    routes answer gzip-encoded whatever the client asked (as a proxy in between might)."""
    if path in LISTINGS:
        doc = {"/api/tags": tags, "/api/ps": ps, "/v1/models": openai_models}[path](models)
        return _json(doc, gzipped)
    if path == "/api/version":
        return web.json_response({"version": VERSION})
    if path.startswith("/v1/models/"):
        name = path.removeprefix("/v1/models/")
        found = find(models, name)
        if found is None:
            error = {
                "message": f"model '{name}' not found",
                "type": "api_error",
                "param": None,
                "code": None,
            }
            return web.json_response({"error": error}, status=404)
        return web.json_response(openai_model(found))
    if path == "/":
        return web.Response(text="Ollama is running")
    return None
