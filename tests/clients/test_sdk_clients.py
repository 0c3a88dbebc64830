"""The real openai and ollama Python clients through the gateway."""

from __future__ import annotations

import ollama
import openai
import pytest

from tests.conftest import GW


async def test_openai_streaming_chat_with_a_key(gw: GW) -> None:
    key = await gw.key()
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    stream = await client.chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = ""
    async for ev in stream:
        if ev.choices and ev.choices[0].delta.content:
            text += ev.choices[0].delta.content
    await client.close()
    assert text == "".join(f"tok{i} " for i in range(gw.upstream.chunks - 2))
    seen = dict((k.lower(), v) for k, v in gw.upstream.seen[0].headers)
    assert "authorization" not in seen


async def test_openai_shows_our_401_message(gw: GW) -> None:
    client = openai.AsyncOpenAI(
        base_url=gw.url + "/v1", api_key="wrong-key-000000000000", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as e:
        await client.chat.completions.create(model="llama3", messages=[])
    await client.close()
    assert e.value.status_code == 401
    assert "invalid, expired or revoked API key" in str(e.value)


async def test_ollama_streaming_generate_with_a_key(gw: GW) -> None:
    key = await gw.key()
    client = ollama.AsyncClient(host=gw.url, headers={"Authorization": f"Bearer {key}"})
    parts = [
        p.response async for p in await client.generate(model="llama3", prompt="hi", stream=True)
    ]
    await client.close()
    assert "".join(parts) == "".join(f"tok{i} " for i in range(gw.upstream.chunks - 1))


async def test_ollama_shows_our_401_message(gw: GW) -> None:
    client = ollama.AsyncClient(host=gw.url)
    with pytest.raises(ollama.ResponseError) as e:
        await client.generate(model="llama3", prompt="hi", stream=False)
    await client.close()
    assert e.value.status_code == 401
    assert "missing API key" in e.value.error


# ---- non-streaming calls: the SDKs' defaults (OpenAI) and `stream=False` (Ollama) ---------------


async def test_openai_non_streaming_chat(gw: GW) -> None:
    key = await gw.key()
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    done = await client.chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "hi"}]
    )
    await client.close()
    assert done.choices[0].message.content == gw.upstream.text()
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == gw.upstream.chunks - 1
    assert b'"stream"' not in gw.upstream.seen[0].body  # the SDK's default: no stream


async def test_openai_lists_and_retrieves_models(gw: GW) -> None:
    key = await gw.key()
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    ids = [m.id async for m in client.models.list()]
    model = await client.models.retrieve("mistral:7b")
    await client.close()
    assert ids == gw.upstream.models
    assert model.id == "mistral:7b"


@pytest.mark.parametrize("chat", [False, True], ids=["generate", "chat"])
async def test_ollama_non_streaming_answer_is_whole(gw: GW, chat: bool) -> None:
    key = await gw.key()
    client = ollama.AsyncClient(host=gw.url, headers={"Authorization": f"Bearer {key}"})
    if chat:
        answer = await client.chat(
            model="llama3", messages=[{"role": "user", "content": "hi"}], stream=False
        )
        text = answer.message.content
    else:
        answer = await client.generate(model="llama3", prompt="hi", stream=False)
        text = answer.response
    await client.close()
    assert text == gw.upstream.text()
    assert answer.done and answer.done_reason == "stop"
    assert answer.eval_count == gw.upstream.chunks - 1 and answer.prompt_eval_count


async def test_ollama_lists_models(gw: GW) -> None:
    key = await gw.key()
    client = ollama.AsyncClient(host=gw.url, headers={"Authorization": f"Bearer {key}"})
    listed = await client.list()
    running = await client.ps()
    await client.close()
    assert [m.model for m in listed.models] == gw.upstream.models
    assert [m.model for m in running.models] == gw.upstream.models
