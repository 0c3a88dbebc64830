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
