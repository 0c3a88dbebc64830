"""Model lists for a key limited to models, against a real Go upstream: every method that
reaches a listing route answers from the filtered list, and a long list is read whole.

Go's net/http computes a Content-Length for a HEAD answer whose handler wrote a short body
(it buffers up to 2 KiB), so a HEAD passed on unfiltered tells a limited key the size of the
full list: how many models are installed, and when one is pulled or loaded.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localai_authd.keys.store import KeyStore
from tests.security.conftest import GoGW, gateway_to

GLOBS = [
    ("llama3*",),
    ("llama3",),
    ("secret",),
    ("nothing-here",),
    ("*/*/*",),
    ("evil.example/*/*",),
]


async def _req(url: str, method: str, key: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize("path", ["/api/tags", "/api/ps"])
@pytest.mark.parametrize("globs", GLOBS)
async def test_head_on_a_listing_says_no_more_than_the_filtered_get(
    go_gw: GoGW, path: str, globs: tuple[str, ...]
) -> None:
    key = (await go_gw.store.create("lim", models=globs)).key
    status, headers, body = await _req(go_gw.url + path, "GET", key)
    assert status == 200
    head_status, head_headers, head_body = await _req(go_gw.url + path, "HEAD", key)
    assert (head_status, head_body) == (200, b"")
    # Whatever length the HEAD states is the filtered answer's, never the full list's.
    assert head_headers.get("Content-Length", str(len(body))) == str(len(body))
    assert head_headers.get("Content-Type") == headers.get("Content-Type")


@pytest.fixture
async def many_models(
    go_binary: Path, tmp_path: Path, store: KeyStore, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, list[str]]]:
    count: int = request.param
    names = [f"llama3-m{i:05d}:latest" for i in range(count)] + ["secret:latest"]
    proc = subprocess.Popen(
        [str(go_binary), "-models", ",".join(names)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        async with gateway_to(f"http://127.0.0.1:{port}", store, tmp_path / "a.jsonl") as url:
            yield url, names
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("many_models", [1, 40, 600, 3000], indirect=True)
@pytest.mark.parametrize(
    ("path", "list_key", "name_key"),
    [("/api/tags", "models", "name"), ("/api/ps", "models", "model"), ("/v1/models", "data", "id")],
)
async def test_a_long_listing_is_read_whole_and_filtered(
    many_models: tuple[str, list[str]], store: KeyStore, path: str, list_key: str, name_key: str
) -> None:
    url, names = many_models
    key = (await store.create("lim", models=("llama3*",))).key
    status, _, body = await _req(url + path, "GET", key)
    assert status == 200, body[:300]
    doc: dict[str, Any] = json.loads(body)
    assert [e[name_key] for e in doc[list_key]] == [n for n in names if n.startswith("llama3")]
