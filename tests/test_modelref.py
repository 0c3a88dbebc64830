"""Ollama model references and the globs matched against them."""

from __future__ import annotations

import pytest

from localai_authd import modelref


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("llama3", "registry.ollama.ai/library/llama3:latest"),
        ("LLAMA3:8B", "registry.ollama.ai/library/llama3:8b"),
        ("user/m", "registry.ollama.ai/user/m:latest"),
        ("hf.co/org/m:q4", "hf.co/org/m:q4"),
        ("localhost:5000/ns/m", "localhost:5000/ns/m:latest"),
        ("http://h/ns/m:t", "http://h/ns/m:t"),
        ("llama3:cloud", "registry.ollama.ai/library/llama3:latest:cloud"),
        ("gpt-oss:20b-cloud", "registry.ollama.ai/library/gpt-oss:20b:cloud"),
        ("llama3:8b:LOCAL", "registry.ollama.ai/library/llama3:8b:local"),
    ],
)
def test_parse_like_ollama(name: str, full: str) -> None:
    assert str(modelref.parse(name)) == full


@pytest.mark.parametrize(
    "name",
    [
        " llama3",
        "llama3 ",
        "llama3\t",
        "llama3\n",
        "lla\x00ma3",
        "llam\u04303",  # a Cyrillic a
        "m@sha256:ab",
        "/m",
        "a//b",
        "m:",
        "a/b/c/d",
        "x:local:cloud",
        "",
        "http:///m",
        "ns/m:t:u",
    ],
)
def test_unreadable_references(name: str) -> None:
    with pytest.raises(modelref.BadReference):
        modelref.parse(name)
    assert not modelref.allowed(name, ("*", "*/*", "*/*/*", "*:*"))


@pytest.mark.parametrize(
    ("name", "globs", "ok"),
    [
        ("llama3", ("llama3*",), True),
        ("llama3:8b", ("llama3*",), True),
        ("LLaMA3.1:70B", ("llama3*",), True),
        ("registry.ollama.ai/library/llama3", ("llama3*",), True),
        ("REGISTRY.OLLAMA.AI/Library/llama3", ("llama3*",), True),
        ("llama3", ("LLAMA3*",), True),
        # the registry is part of the name: a glob without a host is the default registry
        ("llama3.attacker.example/x/y:latest", ("llama3*",), False),
        ("llama3.attacker.example/x/y:latest", ("*",), False),
        ("registry.ollama.ai:443/library/llama3", ("llama3*",), False),
        ("evil/llama3", ("llama3*",), False),
        ("evil/llama3", ("*/llama3*",), True),
        ("h.example/evil/llama3", ("*/llama3*",), False),
        ("h.example/evil/llama3", ("*/*/llama3*",), True),
        ("h.example/evil/llama3", ("h.example/*/*",), True),
        ("http://registry.ollama.ai/library/llama3", ("llama3*",), False),
        # :cloud runs elsewhere: only a glob that says so
        ("llama3:cloud", ("llama3*",), False),
        ("llama3:8b-cloud", ("llama3*",), False),
        ("llama3:cloud", ("llama3*:cloud",), True),
        ("llama3:local", ("llama3*",), True),
        # tags
        ("llama3", ("llama3",), True),
        ("llama3:latest", ("llama3",), True),
        ("llama3:8b", ("llama3",), False),
        ("llama3:8b", ("llama3:*",), True),
        ("llama3x", ("llama3?",), True),
        ("llama3:8b", ("llama3:7b",), False),
        ("secret", ("llama3*", "mistral"), False),
        ("anything", ("[",), False),
    ],
)
def test_globs(name: str, globs: tuple[str, ...], ok: bool) -> None:
    assert modelref.allowed(name, globs) is ok
