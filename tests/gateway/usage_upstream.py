"""The fake upstream, reporting token usage the way Ollama and OpenAI-compatible servers do.

Ollama: the final NDJSON object (and a non-streamed answer) carries prompt_eval_count and
eval_count. OpenAI: a non-streamed answer carries ``usage``; a stream carries it in one last
event (empty ``choices``) only when the client sent ``stream_options.include_usage``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.fakeupstream import FakeUpstream, Seen

PROMPT_TOKENS = 7
COMPLETION_TOKENS = 5


class UsageUpstream(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.filler = 0  # bytes of generated text per chunk (long answers push usage far)

    async def _answer(self, request: web.Request, seen: Seen) -> web.StreamResponse:
        doc: Any = json.loads(seen.body) if seen.body else {}
        if request.path == "/api/generate":
            return await self._ollama(request, doc)
        if request.path == "/v1/chat/completions":
            return await self._openai(request, doc)
        return await super()._answer(request, seen)

    def _text(self, i: int) -> str:
        return f"tok{i} " + "x" * self.filler

    async def _ollama(self, request: web.Request, doc: dict[str, Any]) -> web.StreamResponse:
        final = {
            "model": doc.get("model"),
            "response": "",
            "done": True,
            "prompt_eval_count": PROMPT_TOKENS,
            "eval_count": COMPLETION_TOKENS,
        }
        if doc.get("stream") is False:
            return web.json_response({**final, "response": "hello"})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(COMPLETION_TOKENS):
            if self.hold_after is not None and i == self.hold_after:
                await self.release.wait()
            line = {"model": doc.get("model"), "response": self._text(i), "done": False}
            await resp.write(json.dumps(line).encode() + b"\n")
            await asyncio.sleep(0)
        await resp.write(json.dumps(final).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def _openai(self, request: web.Request, doc: dict[str, Any]) -> web.StreamResponse:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
        if not doc.get("stream"):
            msg = {"role": "assistant", "content": "hello"}
            return web.json_response(
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(d: dict[str, Any]) -> None:
            await resp.write(b"data: " + json.dumps(d).encode() + b"\n\n")

        for i in range(COMPLETION_TOKENS):
            delta = {"content": self._text(i)}
            await event({"id": "c1", "choices": [{"index": 0, "delta": delta}]})
        await event({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (doc.get("stream_options") or {}).get("include_usage"):
            await event({"id": "c1", "choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
