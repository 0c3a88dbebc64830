"""The gateway authorizes exactly what a Go upstream (decoding as Ollama does) acts on.

Hypothesis writes request bodies the way an attacker would: the fields that name a model
spelled in every case, with the long s / Kelvin sign that Go folds to ASCII, with ``\\u``
escapes, duplicated, in any order, next to decoys nested where Go does not look, with data
after the object. Each goes through the gateway with a key limited to ``llama3*`` to the
real Go server, which reports every model it acted on. The property: the Go server never acts
on a model outside the allow-list; and a plain body naming allowed models gets through, with
the Go server acting on exactly the models the gateway checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.security.conftest import GoGW

GLOBS = ("llama3*",)
ALLOWED_MODELS = (
    "llama3",
    "llama3:8b",
    "LLAMA3:latest",
    "registry.ollama.ai/library/llama3.1:70b",
    "library/llama3-x:q4",
    "llama3:local",
)
DENIED_MODELS = (
    "secret",
    "Secret:latest",
    "llama3.attacker.example/x/y:latest",
    "evil/llama3",
    "llama3:cloud",
    "llama3:8b-cloud",
    "http://registry.ollama.ai/library/llama3",
    " secret",
    "secret\t",
    "mistral:7b",
    "registry.ollama.ai/evil/llama3",
)
# The oracle, written independently of modelref.py: what "llama3*" grants, in the fully
# qualified lower-case form the Go server reports.
_GRANTED = re.compile(r"registry\.ollama\.ai/library/llama3[a-z0-9._-]*:[a-z0-9._-]+(:local)?")


def granted(acted: str) -> bool:
    return _GRANTED.fullmatch(acted) is not None


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    fields: tuple[str, ...]  # the body fields that name a model
    required: tuple[tuple[str, ...], ...]
    base: tuple[tuple[str, Any], ...] = ()  # canonical extra fields a plain request carries


ROUTES = (
    RouteCase("POST", "/api/generate", ("model",), (("model",),), (("prompt", "hi"),)),
    RouteCase("POST", "/api/chat", ("model",), (("model",),), (("messages", []),)),
    RouteCase("POST", "/api/embed", ("model",), (("model",),), (("input", "x"),)),
    RouteCase("POST", "/api/embeddings", ("model",), (("model",),), (("prompt", "x"),)),
    RouteCase("POST", "/api/show", ("model", "name"), (("model", "name"),)),
    RouteCase("DELETE", "/api/delete", ("model", "name"), (("model", "name"),)),
    RouteCase("POST", "/api/pull", ("model", "name"), (("model", "name"),)),
    RouteCase("POST", "/api/push", ("model", "name"), (("model", "name"),)),
    RouteCase("POST", "/api/copy", ("source", "destination"), (("source",), ("destination",))),
    RouteCase("POST", "/api/create", ("model", "name", "from"), (("model", "name"),)),
    RouteCase("POST", "/v1/chat/completions", ("model",), (("model",),), (("messages", []),)),
    RouteCase("POST", "/v1/completions", ("model",), (("model",),), (("prompt", "x"),)),
    RouteCase("POST", "/v1/embeddings", ("model",), (("model",),), (("input", "x"),)),
    RouteCase("POST", "/v1/responses", ("model",), (("model",),), (("input", "x"),)),
)

# ---- key spellings -----------------------------------------------------------------------

_FOLD = {"s": "\u017f", "k": "\u212a"}  # Go's simple folding: long s ~ s, Kelvin sign ~ k


@st.composite
def spelling(draw: st.DrawFn, name: str) -> tuple[str, str]:
    """(the key as decoded, the key as written in JSON) for a spelling of ``name``."""
    kind = draw(st.sampled_from(["exact", "exact", "case", "fold", "escaped"]))
    chars = list(name)
    if kind in ("case", "fold"):
        chars = [c.upper() if draw(st.booleans()) else c for c in chars]
    if kind == "fold":
        chars = [_FOLD.get(c.lower(), c) if draw(st.booleans()) else c for c in chars]
    key = "".join(chars)
    if kind == "escaped":
        written = "".join(
            f"\\u{ord(c):04x}" if draw(st.booleans()) else json.dumps(c)[1:-1] for c in key
        )
    else:
        written = json.dumps(key, ensure_ascii=draw(st.booleans()))[1:-1]
    return key, f'"{written}"'


@dataclass
class Body:
    raw: bytes
    plain: bool  # only canonical keys, each once, nothing after the object
    named: dict[str, str]  # canonical field -> model, for a plain body


@st.composite
def body_for(draw: st.DrawFn, route: RouteCase) -> Body:
    models = st.sampled_from(ALLOWED_MODELS + DENIED_MODELS)
    entries: list[tuple[str, str, str]] = []  # (canonical field, written key, written value)
    plain = True
    named: dict[str, str] = {}
    for field in draw(st.lists(st.sampled_from(route.fields), min_size=1, max_size=5)):
        key, written = draw(spelling(field))
        model = draw(models)
        if key != field or field in named:
            plain = False
        named[field] = model
        entries.append((field, written, json.dumps(model)))
    base = dict(route.base)
    n_fields = len(entries)
    decoy = draw(st.sampled_from(["none", "none", "options", "messages", "nested_model", "files"]))
    if decoy == "options":  # a map in Go: keys there bind nothing
        entries.append(("options", '"options"', json.dumps({"model": "secret", "num_ctx": 8})))
    elif decoy == "messages":
        msg = [{"role": "user", "content": "x", "model": "secret", "name": "secret"}]
        entries.append(("messages", '"messages"', json.dumps(msg)))
    elif decoy == "nested_model":
        entries.append(("format", '"format"', json.dumps({"model": "secret"})))
    elif decoy == "files" and route.path == "/api/create":
        entries.append(("files", '"files"', json.dumps({"x.gguf": "sha256:" + "0" * 64})))
        plain = False
    decoys = {e[0] for e in entries[n_fields:]}
    for k, v in base.items():
        if k not in decoys:  # a decoy takes the place of the plain field it shares a key with
            entries.append((k, json.dumps(k), json.dumps(v)))
    entries = draw(st.permutations(entries))
    text = "{" + ",".join(f"{k}:{v}" for _, k, v in entries) + "}"
    trailing = draw(st.sampled_from(["", "", "\n", '{"model":"secret"}', ' {"name":"secret"}']))
    if trailing.strip():
        plain = False
    return Body((text + trailing).encode(), plain, named)


def plain_request_allowed(route: RouteCase, body: Body) -> bool:
    groups_ok = all(any(body.named.get(f) for f in group) for group in route.required)
    return groups_ok and all(m in ALLOWED_MODELS for m in body.named.values())


cases = st.sampled_from(ROUTES).flatmap(lambda r: st.tuples(st.just(r), body_for(r)))


@pytest.fixture
async def limited(go_gw: GoGW) -> str:
    issued = await go_gw.store.create("limited", scopes=("inference", "admin"), models=GLOBS)
    return issued.key


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases)
async def test_go_never_acts_on_a_model_outside_the_allow_list(
    go_gw: GoGW, limited: str, case: tuple[RouteCase, Body]
) -> None:
    route, body = case
    before = len(go_gw.go.log())
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            route.method,
            go_gw.url + route.path,
            data=body.raw,
            headers={"Authorization": f"Bearer {limited}", "Content-Type": "application/json"},
        ) as r,
    ):
        status, answer = r.status, await r.read()
    new = go_gw.go.log()[before:]
    for entry in new:
        for acted in entry["acted"]:
            assert granted(acted), (route.path, body.raw, entry)
        assert entry.get("files", 0) == 0, (body.raw, entry)
    if body.plain and plain_request_allowed(route, body):
        assert status == 200, (route.path, body.raw, answer)
        assert len(new) == 1
        # Ollama's cmp.Or(Model, Name): the model it acts on is one the gateway checked.
        expected = {f: m for f, m in body.named.items() if m}
        assert len(new[0]["acted"]) >= 1
        assert all(granted(a) for a in new[0]["acted"]), expected
    elif status == 200:
        assert len(new) == 1  # allowed through: still only allowed models were acted on
    else:
        assert new == [], (status, body.raw)  # refused: the upstream saw nothing


@st.composite
def model_paths(draw: st.DrawFn) -> str:
    """/v1/models/{id} with the id's characters percent-encoded at random."""
    model = draw(st.sampled_from(ALLOWED_MODELS + DENIED_MODELS))
    out = []
    for c in model:
        must = not (c.isascii() and (c.isalnum() or c in "-._~:@/+"))
        out.append(f"%{ord(c):02X}" if must or draw(st.booleans()) else c)
    return "/v1/models/" + "".join(out)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=model_paths())
async def test_go_never_shows_a_model_outside_the_allow_list(
    go_gw: GoGW, limited: str, path: str
) -> None:
    before = len(go_gw.go.log())
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            URL(go_gw.url + path, encoded=True),  # as written: no re-quoting by the client
            headers={"Authorization": f"Bearer {limited}"},
            allow_redirects=False,
        ) as r,
    ):
        status = r.status
    new = go_gw.go.log()[before:]
    assert all(granted(a) for e in new for a in e["acted"]), (path, new)
    assert status in (200, 400, 404), (path, status)
    if status != 200:
        assert new == []
