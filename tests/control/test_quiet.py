"""The control socket's own answers name no Python or aiohttp version and echo nothing."""

from __future__ import annotations

import pytest

from tests.control.conftest import Control
from tests.control.wire import http, parse, send_raw

SECRET = "sk_local_QUIETQUIETQU_" + "Xy7" * 16


@pytest.mark.parametrize(
    "raw",
    [
        f"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\r{SECRET}\r\n\r\n".encode(),
        f"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header {SECRET}\r\n\r\n".encode(),
        f"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\r\n {SECRET}\r\n\r\n".encode(),
        f"GET /v1/{SECRET} HTTP/1.x\r\nHost: x\r\n\r\n".encode(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
    ],
    ids=["cr-in-value", "no-colon", "obs-fold", "bad-version", "tls-hello"],
)
async def test_parser_errors_are_plain_400s(control: Control, raw: bytes) -> None:
    a = parse(await send_raw(control.sock, raw))
    assert a.status == 400
    assert a.headers["server"] == "localai-authd"
    for word in (b"Python", b"aiohttp", SECRET[9:30].encode()):
        assert word not in a.body, a.body


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/status"), ("GET", "/nowhere"), ("PUT", "/v1/keys")]
)
async def test_every_answer_names_only_localai_authd(
    control: Control, method: str, path: str
) -> None:
    a = await http(control.sock, method, path)
    assert a.headers["server"] == "localai-authd", a.headers
    assert b"aiohttp" not in a.body and b"Python/" not in a.body


async def test_a_key_shaped_name_never_reaches_the_audit_trail(control: Control) -> None:
    """Refused requests are audited with the name they tried; the trail redacts a
    credential in any field, whichever plane wrote the record."""
    for method, path, body in [
        ("POST", "/v1/keys", {"name": SECRET}),
        ("POST", "/v1/keys", {SECRET: 1}),
        ("GET", f"/v1/keys/{SECRET}", None),
    ]:
        assert (await http(control.sock, method, path, body)).status >= 400
    trail = repr(control.audit())
    assert SECRET[9:30] not in trail and "[redacted]" in trail
