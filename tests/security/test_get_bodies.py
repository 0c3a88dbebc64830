"""A body on GET or HEAD never reaches the upstream (it could be read as a second request).

The upstream here is the dangerous kind: it ignores the body of a GET, so whatever follows
the head on its pooled connection is parsed as the next request, one the gateway never
authorized. The gateway refuses such requests (400, connection closed) before forwarding.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from localai_authd.keys.store import KeyStore
from tests.conftest import raw_request, status_of
from tests.security.conftest import gateway_to, read_audit


class NaiveUpstream:
    """HTTP/1.1 keep-alive server that frames a GET by its head alone; records request lines."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100):
                head = await r.readuntil(b"\r\n\r\n")
                line, *fields = head.split(b"\r\n")
                self.lines.append(line)
                length = 0
                for f in fields:
                    k, _, v = f.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if not line.startswith((b"GET ", b"HEAD ")):
                    await r.readexactly(length)
                w.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 13\r\n\r\n{"models":[]}'
                )
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def naive(tmp_path: Path, store: KeyStore) -> AsyncIterator[tuple[int, NaiveUpstream, Path]]:
    up = NaiveUpstream()
    url = await up.start()
    audit = tmp_path / "audit.jsonl"
    async with gateway_to(url, store, audit) as gw:
        yield int(gw.rsplit(":", 1)[1]), up, audit
    assert up.server is not None
    up.server.close()


SMUGGLED = (
    b"POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\n\r\n{"model":"evil"}\n'
)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


@pytest.mark.parametrize(
    ("method", "path", "framing", "payload"),
    [
        ("GET", "/api/tags", "length", SMUGGLED),
        ("GET", "/api/tags", "chunked", SMUGGLED),
        ("HEAD", "/api/tags", "length", SMUGGLED),
        ("GET", "/v1/models", "length", SMUGGLED),
        ("GET", "/api/version", "length", SMUGGLED),
        ("GET", "/v1/models/llama3", "length", b"x"),
    ],
)
async def test_get_bodies_never_reach_the_upstream(
    naive: tuple[int, NaiveUpstream, Path],
    store: KeyStore,
    method: str,
    path: str,
    framing: str,
    payload: bytes,
) -> None:
    port, up, audit = naive
    key = (await store.create("k")).key
    body = _chunked(payload) if framing == "chunked" else payload
    frame = (
        b"Transfer-Encoding: chunked\r\n"
        if framing == "chunked"
        else b"Content-Length: %d\r\n" % len(payload)
    )
    req = (
        f"{method} {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n".encode()
        + frame
        + b"\r\n"
        + body
    )
    resp = await raw_request(port, req)
    assert status_of(resp) == 400
    assert up.lines == []  # not the GET, and above all not the POST hidden in its body
    (rec,) = read_audit(audit)
    assert (rec["outcome"], rec["reason"]) == ("bad_request", "invalid_request:body_not_allowed")


async def test_get_without_a_body_still_works(
    naive: tuple[int, NaiveUpstream, Path], store: KeyStore
) -> None:
    port, up, _ = naive
    key = (await store.create("k")).key
    req = f"GET /api/tags HTTP/1.1\r\nHost: gw\r\nx-api-key: {key}\r\nContent-Length: 0\r\n\r\n"
    resp = await raw_request(port, req.encode())
    assert status_of(resp) == 200
    assert up.lines == [b"GET /api/tags HTTP/1.1"]
