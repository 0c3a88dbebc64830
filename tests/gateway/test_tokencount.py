"""Token counting from the tail of an answer, without buffering it."""

from __future__ import annotations

import json

from localai_authd.gateway.tokencount import TAIL, TokenMeter, reported


def test_ollama_final_chunk() -> None:
    tail = b'{"response":"a","done":false}\n{"done":true,"prompt_eval_count":26,"eval_count":290}\n'
    assert reported(tail) == (26, 290)


def test_openai_usage_object_wins_and_generated_text_cannot_fake_it() -> None:
    fake = json.dumps({"choices": [{"delta": {"content": '"usage":{"prompt_tokens":999}'}}]})
    real = json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    tail = f"data: {fake}\n\ndata: {real}\n\ndata: [DONE]\n\n".encode()
    assert reported(tail) == (3, 4)
    only_fake = f"data: {fake}\n\n".encode()
    assert reported(only_fake) is None  # escaped quotes: not a key


def test_meter_keeps_a_bounded_tail_of_whole_chunks() -> None:
    m = TokenMeter()
    m.start("application/x-ndjson")
    for _ in range(1000):
        m.feed(b'{"response":"' + b"x" * 1000 + b'","done":false}\n')
    m.feed(b'{"done":true,"prompt_eval_count":1,"eval_count":2}\n')
    assert sum(len(c) for c in m._chunks) < TAIL + 2000
    t = m.result(100)
    assert (t.tokens_in, t.tokens_out, t.estimated) == (1, 2, False)


def test_estimates_when_nothing_is_reported() -> None:
    m = TokenMeter()
    m.start("text/event-stream")
    for i in range(10):
        m.feed(f'data: {{"choices":[{{"delta":{{"content":"t{i}"}}}}]}}\n\n'.encode())
    t = m.result(400)
    assert (t.tokens_in, t.tokens_out, t.estimated) == (100, 10, True)
    whole = TokenMeter()
    whole.start("application/json")
    whole.feed(b"x" * 41)
    assert whole.result(0).tokens_out == 11
