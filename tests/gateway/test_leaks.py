"""Credentials never leak: not into answers, the audit trail, the log, or the upstream.

Generated variants: every way the gateway (or aiohttp's parser) refuses a request, times
every place a client could put a key or a token (header value, bare in Authorization, header
name, path, query; plain, percent-encoded once or twice, in a Basic blob, truncated). For
each, the credential's bytes (and its random part alone) must be absent from the answer,
the audit file and every log record, and the upstream must have seen nothing.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from tests.conftest import GW, raw_request, status_of


@dataclass
class Req:
    method: str = "POST"
    path: str = "/api/generate"
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"model":"llama3","prompt":"hi","stream":false}'
    version: str = "HTTP/1.1"
    host: str = "127.0.0.1"
    raw_headers: bytes = b""  # appended as they are (malformed on purpose)
    chunked_body: bytes | None = None

    def bytes(self) -> bytes:
        target = self.path + (f"?{self.query}" if self.query else "")
        head = f"{self.method} {target} {self.version}\r\nHost: {self.host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        if self.chunked_body is not None:
            return (
                head.encode()
                + self.raw_headers
                + b"Transfer-Encoding: chunked\r\n\r\n"
                + self.chunked_body
            )
        head += f"Content-Length: {len(self.body)}\r\n"
        return head.encode() + self.raw_headers + b"\r\n" + self.body


def _auth(ka: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {ka}")]


# Each way to be refused, given a valid inference-only key `ka` of another identity; and
# one request that would be served, where the credential must not be forwarded.
ERRORS: dict[str, Callable[[str], Req]] = {
    "ok": lambda ka: Req(headers=_auth(ka)),
    "400-bad-target": lambda ka: Req(path="/api//generate", headers=_auth(ka)),
    "400-two-credentials": lambda ka: Req(headers=[*_auth(ka), ("x-api-key", ka)]),
    "401-none": lambda ka: Req(),
    "401-invalid-key": lambda ka: Req(headers=_auth("sk_local_" + "A" * 12 + "_" + "B" * 49)),
    "403-scope": lambda ka: Req(path="/api/pull", headers=_auth(ka)),
    "404-route": lambda ka: Req(method="GET", path="/api/nothing", headers=_auth(ka), body=b""),
    "405-method": lambda ka: Req(method="GET", path="/api/pull", headers=_auth(ka), body=b""),
    "413-body": lambda ka: Req(headers=_auth(ka), body=b"x" * 5000),
    "505-version": lambda ka: Req(method="GET", path="/api/tags", headers=_auth(ka), body=b""),
    "parser-cr-in-value": lambda ka: Req(headers=_auth(ka), raw_headers=b"X-A: a\rb\r\n"),
    "parser-obs-fold": lambda ka: Req(headers=_auth(ka), raw_headers=b"X-A: a\r\n b\r\n"),
    "parser-bad-chunk": lambda ka: Req(headers=_auth(ka), chunked_body=b"zz\r\nab\r\n0\r\n\r\n"),
}


def _pct(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def _basic(cred: str) -> str:
    return base64.b64encode(f"laptop:{cred}".encode()).decode()


# Each place to put credential `c` into request `r`; returns what was placed (to look for).
def _header(name: str, value: Callable[[str], str]) -> Callable[[Req, str], str]:
    def place(r: Req, c: str) -> str:
        v = value(c)
        if name.lower() == "authorization":
            r.headers = [(k, x) for k, x in r.headers if k.lower() != "authorization"]
        r.headers.append((name, v))
        return v

    return place


def _header_name(r: Req, c: str) -> str:
    r.headers.append((c, "1"))
    return c


def _header_name_prefixed(r: Req, c: str) -> str:
    r.headers.append((f"X-Stainless-{c}", "1"))  # X-Stainless-* is forwarded
    return c


def _path(encode: Callable[[str], str]) -> Callable[[Req, str], str]:
    def place(r: Req, c: str) -> str:
        r.path = r.path.rstrip("/") + "/" + encode(c)
        return encode(c)

    return place


def _query(encode: Callable[[str], str]) -> Callable[[Req, str], str]:
    def place(r: Req, c: str) -> str:
        r.query = f"key={encode(c)}"
        return encode(c)

    return place


def _method(r: Req, c: str) -> str:
    r.method = c.upper()  # a method is any token; upper case is how methods look
    return r.method


def _host(r: Req, c: str) -> str:
    r.host = c
    return c


PLACES: dict[str, Callable[[Req, str], str]] = {
    "method": _method,
    "host": _host,
    "allowed-prefix-header-name": _header_name_prefixed,
    "authorization-bare": _header("Authorization", lambda c: c),
    "authorization-unknown-scheme": _header("Authorization", lambda c: f"Token {c}"),
    "x-api-key-two-words": _header("x-api-key", lambda c: f"Bearer {c}"),
    "other-header": _header("X-Note", lambda c: c),
    "forwarded-header": _header("User-Agent", lambda c: c),
    "forwarded-header-truncated": _header("User-Agent", lambda c: c[:30]),
    "forwarded-header-basic-blob": _header("User-Agent", lambda c: f"Basic {_basic(c)}"),
    "header-name": _header_name,
    "path": _path(lambda c: c),
    "path-percent": _path(_pct),
    "path-truncated": _path(lambda c: c[:25]),
    "query": _query(lambda c: c),
    "query-percent": _query(_pct),
    "query-percent-twice": _query(lambda c: quote(_pct(c), safe="")),
    "query-basic-blob": _query(_basic),
    "query-uppercased": _query(str.upper),
}


async def _token(gw: GW, key: str) -> str:
    resp = await raw_request(
        gw.port,
        (
            "POST /localai-authd/token HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 0\r\n\r\n"
        ).encode(),
    )
    assert status_of(resp) == 200, resp
    return str(json.loads(resp.partition(b"\r\n\r\n")[2])["token"])


def _needles(cred: str, placed: str) -> list[bytes]:
    """What must appear nowhere: the credential, what was placed, and its random part."""
    core = cred[-40:-8] if len(cred) > 48 else cred[len(cred) // 3 :]
    out = {cred, placed, core, core.upper(), placed.upper() if placed != cred else cred}
    return [n.encode() for n in out if len(n) >= 12]


@pytest.mark.parametrize("kind", ["key", "token"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("error", list(ERRORS))
async def test_no_credential_leaks(
    gw: GW, caplog: pytest.LogCaptureFixture, error: str, place: str, kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    gw.gateway.audit.to_log = True  # the journal gets the audit records too
    ka = await gw.key("authorizing")
    leaked = await gw.key("leaked")
    cred = leaked if kind == "key" else await _token(gw, leaked)
    audited_before = len(gw.audit())
    req = ERRORS[error](ka)
    if error == "505-version":
        req.version = "HTTP/1.2"
    placed = PLACES[place](req, cred)
    resp = await raw_request(gw.port, req.bytes())
    status = status_of(resp)
    if error != "ok":
        assert 400 <= status < 600, resp[:300]
        assert gw.upstream.seen == []
    upstream = repr(gw.upstream.seen).encode() + b"".join(s.body for s in gw.upstream.seen)
    audit = gw.audit_path.read_bytes() if gw.audit_path.exists() else b""
    assert len(gw.audit()) > audited_before, "every refusal leaves an audit record"
    logs = (
        "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records).encode()
        + caplog.text.encode()
    )
    for needle in [*_needles(cred, placed), ka.encode()]:
        assert needle not in resp, (needle, resp[:400])
        assert needle not in audit, needle
        assert needle not in logs, needle
    for needle in _needles(cred, placed):
        assert needle not in upstream, needle


async def test_a_bare_key_in_authorization_gets_401_without_the_key(gw: GW) -> None:
    key = await gw.key()
    resp = await raw_request(
        gw.port, f"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n\r\n".encode()
    )
    assert status_of(resp) == 401
    assert key.encode() not in resp
    assert b"use Bearer" in resp


@pytest.mark.parametrize(
    "place", ["path", "path-percent", "query", "query-percent", "query-basic-blob"]
)
async def test_a_credential_in_the_url_is_refused_with_its_reason(gw: GW, place: str) -> None:
    key = await gw.key()
    req = Req(method="GET", path="/api/tags", headers=_auth(key), body=b"")
    PLACES[place](req, await gw.key("other"))
    resp = await raw_request(gw.port, req.bytes())
    assert status_of(resp) == 400
    assert gw.audit()[-1]["reason"] == "credential_in_url"
    assert gw.audit()[-1]["path"] is None
    assert gw.upstream.seen == []


async def test_a_model_name_that_is_a_key_is_redacted_in_answer_and_audit(gw: GW) -> None:
    key = await gw.key("limited", models=("llama3*",))
    other = await gw.key("other")
    body = f'{{"model":"{other}","prompt":"hi"}}'.encode()
    req = Req(headers=_auth(key), body=body)
    resp = await raw_request(gw.port, req.bytes())
    assert status_of(resp) == 403
    assert other.encode() not in resp
    rec = gw.audit()[-1]
    assert rec["model"] == "[redacted]" and other not in gw.audit_path.read_text()


async def test_credentials_in_the_body_are_the_clients_business(gw: GW) -> None:
    """Bodies are forwarded as they are (a prompt may quote anything): the scan is for
    headers, paths and queries, which end up in logs."""
    key = await gw.key()
    body = f'{{"model":"llama3","prompt":"{key}","stream":false}}'.encode()
    resp = await raw_request(gw.port, Req(headers=_auth(key), body=body).bytes())
    assert status_of(resp) == 200
    assert gw.upstream.seen[0].body == body


@pytest.mark.parametrize("encode", [lambda c: c, _pct, _basic], ids=["plain", "percent", "basic"])
async def test_forward_auth_never_quotes_a_credential_in_the_original_uri(
    gw: GW, caplog: pytest.LogCaptureFixture, encode: Callable[[str], str]
) -> None:
    caplog.set_level(logging.DEBUG)
    key = await gw.key()
    other = await gw.key("other")
    resp = await raw_request(
        gw.port,
        (
            "GET /localai-authd/verify HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nX-Original-Method: GET\r\n"
            f"X-Original-URI: /api/tags?key={encode(other)}\r\n\r\n"
        ).encode(),
    )
    assert status_of(resp) == 403
    assert gw.audit()[-1]["reason"] == "credential_in_url"
    for needle in _needles(other, encode(other)):
        assert needle not in resp and needle not in gw.audit_path.read_bytes()
        assert needle not in caplog.text.encode()
