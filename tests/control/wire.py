"""Talking to the control socket byte by byte, without a client library to tidy things up."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.doc["error"]["code"])


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Answer(status, headers, body)


async def send_raw(sock: Path, data: bytes, timeout: float = 30.0) -> bytes:
    """Write ``data`` and read until the server closes the connection."""
    r, w = await asyncio.open_unix_connection(str(sock))
    try:
        w.write(data)
        await w.drain()
        out = b""
        async with asyncio.timeout(timeout):
            # Linux reports ECONNRESET instead of EOF to a Unix socket peer whose unread
            # bytes were discarded (the server answered before reading them all).
            with contextlib.suppress(ConnectionResetError):
                while chunk := await r.read(65536):
                    out += chunk
        return out
    finally:
        w.close()
        with contextlib.suppress(ConnectionError):
            await w.wait_closed()


def request_bytes(
    method: str,
    path: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    payload = json.dumps(body).encode() if isinstance(body, dict | list) else body
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if payload is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + (payload or b"")


async def http(
    sock: Path,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    return parse(await send_raw(sock, request_bytes(method, path, body, headers)))
