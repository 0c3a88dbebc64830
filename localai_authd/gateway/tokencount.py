"""Tokens of one answer, read as its bytes pass: never buffering a stream. Pure.

Where the upstream reports usage it is near the end of the answer: Ollama's final object
(``prompt_eval_count`` + ``eval_count``, also on a non-streamed answer), OpenAI's ``usage``
object (``prompt_tokens`` / ``completion_tokens``: every non-streamed answer, and the last
event of a stream whose client asked for ``stream_options.include_usage``). So the meter
keeps only the last ``TAIL`` bytes and scans them once, when the answer has ended.

The scan is a byte pattern, not a JSON parse of the tail (a tail need not start on an object
boundary). It cannot be fooled by generated text: inside a JSON string every ``"`` is
escaped, so ``"eval_count":`` with bare quotes only occurs as a real key.

Where no usage is reported (an OpenAI stream without include_usage, a stream cut short, an
upstream that does not say), the tokens are estimated and marked so in the audit record:
out = one token per streamed event (SSE ``data:`` event or NDJSON line; servers send about one
token per event) or, for a single answer, its bytes / 4; in = the request body's bytes / 4
(the usual rule of thumb for English text with BPE tokenizers).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

TAIL = 16 * 1024
_OLLAMA = re.compile(rb'"(prompt_eval_count|eval_count)"\s*:\s*(\d{1,15})')
_OPENAI = re.compile(
    rb'"(prompt_tokens|input_tokens|completion_tokens|output_tokens)"\s*:\s*(\d{1,15})'
)
_OPENAI_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_IN = (b"prompt_eval_count", b"prompt_tokens", b"input_tokens")


@dataclass(frozen=True)
class Tokens:
    tokens_in: int
    tokens_out: int
    estimated: bool
    streamed: bool = False

    def audit_fields(self) -> dict[str, int | bool]:
        out: dict[str, int | bool] = {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_estimated": self.estimated,
        }
        if self.streamed:
            out["stream"] = True
        return out

    @property
    def total(self) -> int:
        return self.tokens_in + self.tokens_out


def _scan(pattern: re.Pattern[bytes], data: bytes, start: int = 0) -> tuple[int, int] | None:
    """The last value of each of the two counts ``pattern`` finds, or None if neither."""
    tin = tout = None
    for m in pattern.finditer(data, start):
        if m.group(1) in _IN:
            tin = int(m.group(2))
        else:
            tout = int(m.group(2))
    if tin is None and tout is None:
        return None
    return tin or 0, tout or 0


def reported(tail: bytes) -> tuple[int, int] | None:
    """(tokens in, tokens out) as the upstream reported them at the end of ``tail``."""
    if b'"usage"' in tail:
        usage = None
        for m in _OPENAI_USAGE.finditer(tail):
            usage = m
        if usage is not None:
            got = _scan(_OPENAI, tail, usage.end())
            if got is not None:
                return got
    if b'eval_count"' not in tail:  # both of Ollama's keys end so
        return None
    return _scan(_OLLAMA, tail)


class TokenMeter:
    """Fed every chunk of one answer (forward.py); asked once, when the answer has ended."""

    __slots__ = ("_chunks", "_events", "_held", "_sep", "bytes")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._events = 0
        self._sep = b""
        self.bytes = 0

    def start(self, content_type: str) -> None:
        ct = content_type.lower()
        self._sep = b"data:" if "event-stream" in ct else b"\n" if "ndjson" in ct else b""

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self._sep:
            self._events += chunk.count(self._sep)
        self._chunks.append(chunk)
        self._held += len(chunk)
        # Keep at least TAIL bytes, in whole chunks (no copying per chunk).
        while len(self._chunks) > 1 and self._held - len(self._chunks[0]) >= TAIL:
            self._held -= len(self._chunks.popleft())

    @property
    def streamed(self) -> bool:
        return bool(self._sep)

    def result(self, request_bytes: int) -> Tokens:
        chunks = self._chunks
        tail = chunks[0] if len(chunks) == 1 else b"".join(chunks)[-TAIL:]
        got = reported(tail)
        if got is not None:
            return Tokens(got[0], got[1], False, self.streamed)
        out = self._events if self._sep else (self.bytes + 3) // 4
        return Tokens((request_bytes + 3) // 4, out, True, self.streamed)
