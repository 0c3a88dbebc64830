"""Bodies Go's encoding/json would read differently from the gateway: refused, never relayed.

Each case was a bypass against a Go upstream before: the gateway checked one model, Ollama
served another. Now each is a 400 ``invalid_request:<reason>`` in the client's dialect, the Go
upstream sees nothing, and the audit record says what was wrong.
"""

from __future__ import annotations

import aiohttp
import pytest

from localai_authd.gateway import body as gwbody
from tests.security.conftest import GoGW

# (path, raw body, reason)
CASES = [
    ("/api/generate", b'{"model":"llama3","Model":"secret"}', "ambiguous_key"),
    ("/api/generate", b'{"Model":"secret"}', "ambiguous_key"),
    ("/api/generate", b'{"model":"llama3","MODEL":"secret"}', "ambiguous_key"),
    ("/api/generate", b'{"model":"llama3","model":"secret"}', "duplicate_key"),
    ("/api/generate", b'{"model":"llama3","\\u006dodel":"secret"}', "duplicate_key"),
    ("/api/generate", b'{"model":"llama3","\\u004dodel":"secret"}', "ambiguous_key"),
    ("/api/generate", b'{"model":"llama3"}{"model":"secret"}', "body_trailing_data"),
    ("/api/generate", b'{"model":"llama3"} x', "body_trailing_data"),
    ("/api/chat", b'{"model":"llama3","Model":"secret","messages":[]}', "ambiguous_key"),
    ("/api/embed", b'{"model":"llama3","mOdEl":"secret"}', "ambiguous_key"),
    ("/api/show", b'{"model":"","Name":"secret"}', "ambiguous_key"),
    ("/api/show", b'{"name":"llama3","name":"secret"}', "duplicate_key"),
    (
        "/api/copy",
        '{"source":"llama3","\u017fource":"secret","destination":"llama3-b"}'.encode(),
        "ambiguous_key",
    ),
    (
        "/api/copy",
        '{"source":"llama3","destination":"llama3-b","de\u017ftination":"secret"}'.encode(),
        "ambiguous_key",
    ),
    (
        "/api/copy",
        b'{"source":"llama3","destination":"llama3-b","Destination":"secret"}',
        "ambiguous_key",
    ),
    ("/api/create", b'{"model":"llama3-x","from":"llama3","From":"secret"}', "ambiguous_key"),
    ("/api/create", b'{"model":"llama3-x","from":"llama3","FROM":"secret"}', "ambiguous_key"),
    ("/api/pull", b'{"model":"llama3","Name":"secret"}', "ambiguous_key"),
    ("/api/push", b'{"name":"llama3","nAme":"secret"}', "ambiguous_key"),
    ("/api/delete", b'{"model":"llama3","Model":"secret"}', "ambiguous_key"),
    ("/v1/chat/completions", b'{"model":"llama3","Model":"secret","messages":[]}', "ambiguous_key"),
    ("/v1/embeddings", b'{"model":"llama3","model":"secret","input":"x"}', "duplicate_key"),
    # Where nothing names a model, a fold collision is still refused: limits read these.
    (
        "/api/generate",
        '{"model":"llama3","keep_alive":0,"\u212aeep_alive":-1}'.encode(),
        "ambiguous_key",
    ),
    ("/api/generate", b'{"model":"llama3","Keep_Alive":-1}', "ambiguous_key"),
    (
        "/api/generate",
        b'{"model":"llama3","options":{"num_ctx":2,"num_ctx":999999}}',
        "duplicate_key",
    ),
    ("/api/generate", b'{"model":"llama3","a\\ud800":1,"a\\udc00":2}', "invalid_unicode"),
]


def _method(path: str) -> str:
    return "DELETE" if path == "/api/delete" else "POST"


@pytest.mark.parametrize(("path", "raw", "reason"), CASES)
async def test_ambiguous_bodies_are_refused(
    go_gw: GoGW, path: str, raw: bytes, reason: str
) -> None:
    key = (await go_gw.store.create("k", scopes=("inference", "admin"), models=("llama3*",))).key
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            _method(path), go_gw.url + path, data=raw, headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        assert r.status == 400
        doc = await r.json()
    if path.startswith("/v1/"):
        assert doc["error"]["type"] == "invalid_request_error"
        assert doc["error"]["code"] == f"invalid_request:{reason}"
    else:
        assert isinstance(doc["error"], str)
    assert go_gw.go.log() == []
    (rec,) = go_gw.audit()
    assert (rec["status"], rec["outcome"], rec["reason"]) == (
        400,
        "bad_request",
        f"invalid_request:{reason}",
    )


@pytest.mark.parametrize(("path", "raw", "reason"), CASES)
async def test_the_same_bodies_also_refused_for_an_unlimited_key(
    go_gw: GoGW, path: str, raw: bytes, reason: str
) -> None:
    """An unlimited key may name any model, but limits and token counting read the body."""
    key = (await go_gw.store.create("any", scopes=("inference", "admin"))).key
    async with (
        aiohttp.ClientSession() as http,
        http.request(_method(path), go_gw.url + path, data=raw, headers={"x-api-key": key}) as r,
    ):
        assert r.status == 400
    assert go_gw.go.log() == []


def test_parse_object_reasons() -> None:
    for path, raw, reason in CASES:
        with pytest.raises(gwbody.BodyError) as e:
            gwbody.parse_object(raw)
        assert e.value.reason == reason, (path, raw)


def test_what_stays_accepted() -> None:
    # Lower-case keys nested anywhere, case-different keys in different objects, and keys
    # that merely look alike (no Go fold relates them) are fine.
    ok = [
        b'{"model":"llama3","options":{"Model":"x"}}',
        b'{"model":"llama3","messages":[{"role":"user","content":"x","name":"Bob"}]}',
        b'{"model":"llama3","format":{"properties":{"Name":{"type":"string"}}}}',
        b' {"model":"llama3"} \n',
        '{"model":"llama3","prompt":"\u017f\u212a \\ud83d\\ude00"}'.encode(),
        b'{"model":"llama3","x":1e308,"y":-0.0,"z":123456789012345678901234567890}',
    ]
    for raw in ok:
        assert gwbody.parse_object(raw)["model"] == "llama3"
