"""What looks like a credential (redact.py): generated variants of real keys and tokens."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localai_authd.keys import format as keyformat
from localai_authd.redact import REDACTED, looks_like_credential, redact

KEY = keyformat.mint(keyformat.new_kid())
# The shape of a token (tk_local_ + signing id + base64url JSON payload + signature).
TOKEN = (
    "tk_local_0a1b2c3d"
    + base64.urlsafe_b64encode(b'{"v":1,"k":"abcdefabcdef","g":"x","i":1,"e":2}')
    .decode()
    .rstrip("=")
    + "A" * 43
)


def _variants(cred: str) -> dict[str, str]:
    basic = base64.b64encode(f"laptop:{cred}".encode()).decode()
    return {
        "plain": cred,
        "upper": cred.upper(),
        "dashes": cred.replace("_", "-"),
        "truncated-tail": cred[:24],
        "no-prefix": cred[9:],
        "percent": "".join(f"%{b:02X}" for b in cred.encode()),
        "percent-twice": quote("".join(f"%{b:02X}" for b in cred.encode()), safe=""),
        "quote-plus": quote_plus(cred),
        "basic-blob": basic,
        "basic-header": f"Basic {basic}",
        "urlsafe-blob": base64.urlsafe_b64encode(cred.encode()).decode().rstrip("="),
        "in-path": f"/api/tags/{cred}",
        "in-query": f"a=1&key={cred}&b=2",
        "in-sentence": f"the key {cred} is mine",
    }


@pytest.mark.parametrize("cred", [KEY, TOKEN], ids=["key", "token"])
@pytest.mark.parametrize("variant", list(_variants(KEY)))
def test_variants_look_like_credentials_and_are_redacted(cred: str, variant: str) -> None:
    text = _variants(cred)[variant]
    assert looks_like_credential(text)
    out = redact(text)
    assert REDACTED in out
    assert not looks_like_credential(out)
    assert cred[-30:] not in out and cred[-30:].upper() not in out


@pytest.mark.parametrize(
    "text",
    [
        "/api/generate",
        "/v1/chat/completions",
        "/api/blobs/sha256:" + "0123456789abcdef" * 4,
        "/v1/models/llama3.1:8b-instruct-q4_K_M",
        "qwen2.5-coder_7B-instruct",
        "task_local_model",
        "desk-local-llama",
        "application/json; charset=utf-8",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
        "OpenAI/Python 1.54.3",
        "ollama-python/0.4.4 (x86_64 linux) Python/3.11.2",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # traceparent
        "stream=true&format=json",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert not looks_like_credential(text)
    assert redact(text) == text


@settings(max_examples=200)
@given(st.text(max_size=60), st.text(max_size=60))
def test_a_key_anywhere_in_any_text_is_found(before: str, after: str) -> None:
    text = before + " " + KEY + " " + after
    assert looks_like_credential(text)
    assert KEY not in redact(text)
