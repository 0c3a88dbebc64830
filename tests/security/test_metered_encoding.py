"""Token budgets read the answer's reported usage, so that answer must reach the meter as
text: a client that asks for a compressed answer (``Accept-Encoding: gzip``, passed on by the
header allow-list) from an upstream that honours it (cpp-httplib built with zlib, Starlette's
GZipMiddleware, ...) would have its tokens estimated from the compressed bytes (a fraction of
the real count) and spend its budget several times over.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from localai_authd.keys.store import KeyStore
from tests.security.conftest import gateway_to, read_audit

PROMPT, COMPLETION = 4321, 8765


def _answer(path: str, stream: bool) -> tuple[bytes, str]:
    if path.startswith("/api/"):
        lines = [{"response": "tok ", "done": False} for _ in range(30)]
        final = {"done": True, "prompt_eval_count": PROMPT, "eval_count": COMPLETION}
        parts = [*lines, final] if stream else [final]
        return b"".join(json.dumps(p).encode() + b"\n" for p in parts), "application/x-ndjson"
    usage = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION}
    if stream:
        events = [{"choices": [{"delta": {"content": "tok "}}]} for _ in range(30)]
        events.append({"choices": [], "usage": usage})
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        return body + b"data: [DONE]\n\n", "text/event-stream"
    return json.dumps({"choices": [{"text": "tok " * 30}], "usage": usage}).encode(), (
        "application/json"
    )


async def _compressing(request: web.Request) -> web.StreamResponse:
    """Answers the way a server with response compression does."""
    doc = await request.json()
    body, ctype = _answer(request.path, bool(doc.get("stream")))
    accept = request.headers.get("Accept-Encoding", "").lower()
    headers = {"Content-Type": ctype}
    if "gzip" in accept:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    elif "deflate" in accept:
        body, headers["Content-Encoding"] = zlib.compress(body), "deflate"
    return web.Response(body=body, headers=headers)


@pytest.fixture
async def compressing_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _compressing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


ROUTES = [
    ("/api/generate", {"model": "llama3", "prompt": "x"}),
    ("/api/chat", {"model": "llama3", "messages": [{"role": "user", "content": "x"}]}),
    ("/v1/chat/completions", {"model": "llama3", "messages": []}),
    ("/v1/completions", {"model": "llama3", "prompt": "x"}),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("accept", ["gzip", "deflate", "gzip, deflate, br", "GZIP;q=1.0", "*"])
async def test_usage_is_read_from_an_answer_the_client_asked_compressed(
    compressing_upstream: str,
    store: KeyStore,
    tmp_path: Path,
    path: str,
    body: dict[str, object],
    stream: bool,
    accept: str,
) -> None:
    key = (await store.create("k")).key
    audit_path = tmp_path / "audit.jsonl"
    async with (
        gateway_to(compressing_upstream, store, audit_path) as url,
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.post(
            url + path,
            json={**body, "stream": stream},
            headers={"Authorization": f"Bearer {key}", "Accept-Encoding": accept},
        ) as r,
    ):
        assert r.status == 200
        await r.read()
    rec = read_audit(audit_path)[-1]
    assert (rec["tokens_in"], rec["tokens_out"], rec["tokens_estimated"]) == (
        PROMPT,
        COMPLETION,
        False,
    )
