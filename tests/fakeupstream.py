"""A real aiohttp server that speaks like Ollama (NDJSON) and OpenAI (SSE).

It records every request it receives, and can be told to hold a chunk until released,
stall mid-stream, reset the connection, or delay its headers. Used by the tests and by
`make run`-style manual trials (`make fake-upstream`, on 127.0.0.1:11434).

It answers the way the real servers do where clients depend on it: Ollama's /api/generate and
/api/chat stream unless `"stream": false`, and then answer one object with the whole text,
done=true and the token counts; OpenAI's /v1/chat/completions answers one JSON object unless
`"stream": true`. The listings (/api/tags, /api/ps, /v1/models, /v1/models/{id}) of `models`
are in tests/fakelistings.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests import fakelistings as listings

PROMPT_EVAL_COUNT = 3  # what the fake reports as the prompt's tokens, whatever the prompt
CREATED_AT = "2026-11-29T00:00:00Z"


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled_at: float | None = None


class FakeUpstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.chunks = 5  # chunks per stream
        self.interval = 0.0  # seconds between chunks
        self.hold_after: int | None = None  # send this many chunks, then wait for `release`
        self.release = asyncio.Event()
        self.stall_after: int | None = None  # send this many chunks, then go silent forever
        self.reset_after: int | None = None  # send this many chunks, then reset the connection
        self.header_delay = 0.0
        self.redirect = False  # answer GET /api/version with a 302 elsewhere
        # What /api/tags, /api/ps and /v1/models list (in Ollama's and OpenAI's shapes).
        self.models = [
            "llama3:latest",
            "llama3.1:70b",
            "mistral:7b",
            "evil.example/x/llama3:latest",
        ]
        self.gzip_listings = False  # answer the listing routes gzip-encoded, whatever was asked
        self.received = asyncio.Event()  # set whenever a request arrives
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def start(self, port: int = 0) -> None:
        self.runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # ---- the chunks of each dialect ---------------------------------------------------------

    @staticmethod
    def ndjson_chunk(i: int, n: int, model: str) -> bytes:
        done = i == n - 1
        d: dict[str, Any] = {
            "model": model,
            "created_at": CREATED_AT,
            "response": "" if done else f"tok{i} ",
            "done": done,
        }
        if done:
            d.update(FakeUpstream.ollama_counts(n))
        return json.dumps(d).encode() + b"\n"

    @staticmethod
    def ollama_counts(n: int) -> dict[str, Any]:
        """The last object of an Ollama answer: why it stopped, durations (ns), token counts."""
        return {
            "done_reason": "stop",
            "total_duration": 1000,
            "load_duration": 10,
            "prompt_eval_count": PROMPT_EVAL_COUNT,
            "prompt_eval_duration": 100,
            "eval_count": n - 1,
            "eval_duration": 800,
        }

    def text(self) -> str:
        """The whole text of an answer: what the chunks of a stream add up to."""
        return "".join(f"tok{i} " for i in range(self.chunks - 1))

    @staticmethod
    def chat_chunk(i: int, n: int, model: str) -> bytes:
        done = i == n - 1
        d: dict[str, Any] = {
            "model": model,
            "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": "" if done else f"tok{i} "},
            "done": done,
        }
        if done:
            d.update(FakeUpstream.ollama_counts(n))
        return json.dumps(d).encode() + b"\n"

    @staticmethod
    def sse_chunk(i: int, n: int, model: str) -> bytes:
        if i == n - 1:
            return b"data: [DONE]\n\n"
        last = i == n - 2
        d = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": {} if last else {"content": f"tok{i} "},
                    "finish_reason": "stop" if last else None,
                }
            ],
        }
        return b"data: " + json.dumps(d).encode() + b"\n\n"

    def stream_bytes(self, kind: str, model: str = "llama3") -> bytes:
        f = {"ndjson": self.ndjson_chunk, "chat": self.chat_chunk, "sse": self.sse_chunk}[kind]
        return b"".join(f(i, self.chunks, model) for i in range(self.chunks))

    # ---- the handler ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(
            request.method, request.path, request.raw_path, list(request.headers.items()), body
        )
        self.seen.append(seen)
        self.received.set()
        try:
            return await self._answer(request, seen)
        except asyncio.CancelledError:
            seen.cancelled_at = time.monotonic()
            seen.cancelled.set()
            raise
        finally:
            seen.done.set()

    async def _answer(self, request: web.Request, seen: Seen) -> web.StreamResponse:
        path = request.path
        try:
            doc = json.loads(seen.body) if seen.body else {}
        except ValueError:
            doc = {}
        model = doc.get("model", "llama3") if isinstance(doc, dict) else "llama3"
        if self.header_delay:
            await asyncio.sleep(self.header_delay)
        if self.redirect and path == "/api/version":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        listing = listings.answer(path, self.models, gzipped=self.gzip_listings)
        if listing is not None:
            return listing
        if path in ("/api/generate", "/api/chat"):
            kind = "ndjson" if path == "/api/generate" else "chat"
            # Ollama streams unless told not to.
            if isinstance(doc, dict) and doc.get("stream", True) is False:
                return web.json_response(self.ollama_whole(kind, model))
            return await self._stream(request, kind, model)
        if path == "/v1/chat/completions":
            # OpenAI answers one JSON object unless told to stream.
            if isinstance(doc, dict) and doc.get("stream") is True:
                return await self._stream(request, "sse", model)
            return web.json_response(self.openai_whole(model))
        return web.json_response({"ok": True, "path": path})

    def ollama_whole(self, kind: str, model: str) -> dict[str, Any]:
        """Ollama's answer with "stream": false: one object, the whole text, done, counts."""
        d: dict[str, Any] = {"model": model, "created_at": CREATED_AT}
        if kind == "chat":
            d["message"] = {"role": "assistant", "content": self.text()}
        else:
            d["response"] = self.text()
        return {**d, "done": True, **self.ollama_counts(self.chunks)}

    def openai_whole(self, model: str) -> dict[str, Any]:
        """OpenAI's chat completion without "stream": the message and its usage."""
        completion = self.chunks - 1
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": self.text()},
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_EVAL_COUNT,
                "completion_tokens": completion,
                "total_tokens": PROMPT_EVAL_COUNT + completion,
            },
        }

    async def _stream(self, request: web.Request, kind: str, model: str) -> web.StreamResponse:
        ctype = "text/event-stream" if kind == "sse" else "application/x-ndjson"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        f = {"ndjson": self.ndjson_chunk, "chat": self.chat_chunk, "sse": self.sse_chunk}[kind]
        for i in range(self.chunks):
            if self.hold_after is not None and i == self.hold_after:
                await self.release.wait()
            if self.stall_after is not None and i == self.stall_after:
                await asyncio.sleep(3600)
            if self.reset_after is not None and i == self.reset_after:
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(f(i, self.chunks, model))
            if self.interval:
                await asyncio.sleep(self.interval)
        await resp.write_eof()
        return resp


async def _serve(port: int, interval: float) -> None:
    up = FakeUpstream()
    up.chunks, up.interval = 20, interval
    await up.start(port)
    print(f"fake upstream (Ollama NDJSON + OpenAI SSE) on {up.url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--interval", type=float, default=0.05)
    a = ap.parse_args()
    asyncio.run(_serve(a.port, a.interval))
