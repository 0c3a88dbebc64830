"""The control server over its real Unix socket: operations, bad input, time limits, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import pytest

from tests.conftest import eventually, requires
from tests.control.conftest import MAX_REQUEST_BYTES, REQUEST_TIMEOUT, Control
from tests.control.wire import http, parse, request_bytes, send_raw

IMPORTED = "legacy-static-key-0123456789abcdef"


async def test_create_show_list(control: Control) -> None:
    a = await http(control.sock, "POST", "/v1/keys", {"name": "laptop", "models": ["llama3*"]})
    assert a.status == 201, a.body
    assert a.headers["content-type"].startswith("application/json")
    key = a.doc["key"]
    assert a.doc["name"] == "laptop" and a.doc["scopes"] == ["inference"]
    assert a.doc["models"] == ["llama3*"]
    ident = control.store.verify(key)
    assert ident is not None and ident.name == "laptop"

    shown = (await http(control.sock, "GET", "/v1/keys/laptop")).doc
    assert "key" not in shown and "verifiers" not in shown
    assert shown["kid"] == a.doc["kid"]
    listed = (await http(control.sock, "GET", "/v1/keys")).doc
    assert [k["name"] for k in listed["keys"]] == ["laptop"]
    assert key not in json.dumps(listed)


async def test_create_with_scopes_and_expiry(control: Control) -> None:
    body = {"name": "ops", "scopes": ["inference", "admin"], "expires": "1h"}
    # The expiry is "now" at the daemon plus the duration: bracketed by the clock before and
    # after the call, however long the call took.
    t0 = time.time()
    a = await http(control.sock, "POST", "/v1/keys", body)
    t1 = time.time()
    assert a.status == 201, a.body
    assert a.doc["scopes"] == ["inference", "admin"]
    assert t0 + 3600 - 1 <= a.doc["expires"] <= t1 + 3600 + 1
    t0 = time.time()
    b = await http(control.sock, "POST", "/v1/keys", {"name": "secs", "expires": 60})
    t1 = time.time()
    assert t0 + 60 - 1 <= b.doc["expires"] <= t1 + 60 + 1


async def test_rotate_with_and_without_grace(control: Control) -> None:
    old = (await control.store.create("laptop")).key
    a = await http(control.sock, "POST", "/v1/keys/laptop/rotate", {"grace": "1h"})
    assert a.status == 200, a.body
    new = a.doc["key"]
    assert control.store.verify(old) is not None and control.store.verify(new) is not None
    assert a.doc["previous_secret_valid_until"] > time.time()

    b = await http(control.sock, "POST", "/v1/keys/laptop/rotate")  # no body: grace 0
    newest = b.doc["key"]
    assert control.store.verify(newest) is not None
    assert control.store.verify(new) is None and control.store.verify(old) is None


async def test_revoke_kills_streams(control: Control) -> None:
    issued = await control.store.create("laptop")
    stream = asyncio.create_task(asyncio.sleep(60))
    control.ctx.streams.add(issued.identity.kid, stream)
    a = await http(control.sock, "POST", "/v1/keys/laptop/revoke", {"kill_streams": True})
    assert a.status == 200, a.body
    assert a.doc["state"] == "revoked" and a.doc["streams_killed"] == 1
    with pytest.raises(asyncio.CancelledError):
        await stream
    assert control.store.verify(issued.key) is None


async def test_revoke_without_kill_leaves_streams(control: Control) -> None:
    issued = await control.store.create("laptop")
    stream = asyncio.create_task(asyncio.sleep(60))
    control.ctx.streams.add(issued.identity.kid, stream)
    a = await http(control.sock, "POST", "/v1/keys/laptop/revoke", {})
    assert a.doc["streams_killed"] == 0 and not stream.done()
    stream.cancel()


async def test_import_never_echoes_the_secret(control: Control) -> None:
    a = await http(control.sock, "POST", "/v1/keys/legacy/import", {"secret": IMPORTED})
    assert a.status == 201, a.body
    assert IMPORTED not in a.body.decode() and a.doc["imported"] is True
    ident = control.store.verify(IMPORTED)
    assert ident is not None and ident.name == "legacy"
    assert IMPORTED not in control.audit_path.read_text()


async def test_status_and_reload(control: Control) -> None:
    await control.store.create("laptop")
    s = await http(control.sock, "GET", "/v1/status")
    assert s.status == 200 and s.doc["keys"]["active"] == 1
    assert s.doc["asyncio_tasks"] >= 1  # this very request's handler is one
    r = await http(control.sock, "POST", "/v1/reload")
    assert r.status == 200 and r.doc == {"reloaded": True, "problems": []}
    assert control.levers.reloads == 1


async def test_audit_records_success_and_failure_with_peer_uid(control: Control) -> None:
    key = (await http(control.sock, "POST", "/v1/keys", {"name": "laptop"})).doc["key"]
    await http(control.sock, "POST", "/v1/keys", {"name": "laptop"})  # conflict
    await http(control.sock, "GET", "/v1/keys/ghost")
    records = control.audit()
    assert [(r["action"], r["outcome"], r["reason"]) for r in records] == [
        ("create", "success", "ok"),
        ("create", "failure", "conflict"),
        ("show", "failure", "not_found"),
    ]
    assert all(r["peer_uid"] == os.getuid() and r["kind"] == "control" for r in records)
    assert records[0]["name"] == "laptop" and records[0]["kid"]
    assert key not in control.audit_path.read_text()


async def test_one_connection_many_requests(control: Control) -> None:
    """Keep-alive: every request on the connection is checked and answered."""
    r, w = await asyncio.open_unix_connection(str(control.sock))
    try:
        for _ in range(3):
            w.write(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await r.readuntil(b"\r\n\r\n")
            length = int(parse(head).headers["content-length"])
            assert parse(head).status == 200
            await r.readexactly(length)
    finally:
        w.close()
        await w.wait_closed()
    assert [x["action"] for x in control.audit()] == ["status"] * 3


@requires("curl")
async def test_curl_for_scripting(control: Control) -> None:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--unix-socket", str(control.sock), "-d", '{"name": "from-curl"}',
        "http://localhost/v1/keys",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    doc = json.loads(out)
    assert doc["name"] == "from-curl"
    assert control.store.verify(doc["key"]) is not None


# ---- bad input: a clear error, and nothing changes -------------------------------------

BAD: list[tuple[str, str, str, Any, int, str]] = [
    # (id, method, path, body, status, code)
    ("unknown-op", "GET", "/v1/frobnicate", None, 404, "unknown_operation"),
    ("unknown-op-post", "POST", "/v2/keys", {"name": "x"}, 404, "unknown_operation"),
    ("dotdot-raw", "GET", "/v1/keys/../../x", None, 404, "unknown_operation"),
    ("trailing-slash", "GET", "/v1/keys/", None, 404, "unknown_operation"),
    ("wrong-method", "DELETE", "/v1/keys/laptop", None, 405, "method_not_allowed"),
    ("unknown-field", "POST", "/v1/keys", {"name": "x", "owner": "me"}, 400, "unknown_field"),
    ("field-on-get", "GET", "/v1/status", {"verbose": True}, 400, "unknown_field"),
    ("rotate-field", "POST", "/v1/keys/laptop/rotate", {"grace": "1h", "x": 1}, 400,
     "unknown_field"),
    ("query", "GET", "/v1/keys?all=1", None, 400, "unknown_field"),
    ("name-dotdot", "POST", "/v1/keys", {"name": "../../x"}, 400, "invalid_request"),
    ("name-missing", "POST", "/v1/keys", {"scopes": ["admin"]}, 400, "invalid_request"),
    ("name-not-string", "POST", "/v1/keys", {"name": 7}, 400, "invalid_request"),
    ("path-dotdot-show", "GET", "/v1/keys/..%2F..%2Fx", None, 400, "invalid_request"),
    ("path-dotdot-rotate", "POST", "/v1/keys/..%2F..%2Fx/rotate", None, 400, "invalid_request"),
    ("path-dotdot-revoke", "POST", "/v1/keys/..%2Fetc/revoke", None, 400, "invalid_request"),
    ("path-dotdot-import", "POST", "/v1/keys/%2E%2E%2Fx/import", {"secret": IMPORTED}, 400,
     "invalid_request"),
    ("path-bad-utf8", "GET", "/v1/keys/%ff", None, 400, "invalid_request"),
    ("scopes-not-list", "POST", "/v1/keys", {"name": "x", "scopes": "admin"}, 400,
     "invalid_request"),
    ("unknown-scope", "POST", "/v1/keys", {"name": "x", "scopes": ["root"]}, 400,
     "invalid_request"),
    ("bad-duration", "POST", "/v1/keys", {"name": "x", "expires": "soon"}, 400,
     "invalid_request"),
    ("bool-duration", "POST", "/v1/keys/laptop/rotate", {"grace": True}, 400, "invalid_request"),
    ("kill-not-bool", "POST", "/v1/keys/laptop/revoke", {"kill_streams": "yes"}, 400,
     "invalid_request"),
    ("secret-missing", "POST", "/v1/keys/legacy/import", {}, 400, "invalid_request"),
    ("not-json", "POST", "/v1/keys", b"name=x", 400, "invalid_json"),
    ("json-array", "POST", "/v1/keys", ["x"], 400, "invalid_json"),
    ("json-deep", "POST", "/v1/keys", b"[" * 2000 + b"]" * 2000, 400, "invalid_json"),
    ("json-bad-utf8", "POST", "/v1/keys", b'{"name": "\xff"}', 400, "invalid_json"),
    ("exists", "POST", "/v1/keys", {"name": "laptop"}, 409, "conflict"),
    ("no-such-key", "POST", "/v1/keys/ghost/rotate", None, 404, "not_found"),
    ("too-large", "POST", "/v1/keys", b"{" + b" " * MAX_REQUEST_BYTES + b"}", 413,
     "request_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_bad_request_changes_nothing(
    control: Control, method: str, path: str, body: Any, status: int, code: str
) -> None:
    await control.store.create("laptop")
    before = control.snapshot()
    a = await http(control.sock, method, path, body)
    assert (a.status, a.code) == (status, code), a.body
    assert a.doc["error"]["message"]
    if status == 405:
        assert a.headers["allow"] == "GET"
    assert control.snapshot() == before
    last = control.audit()[-1]
    assert (last["outcome"], last["reason"], last["status"]) == ("failure", code, status)


async def test_oversized_chunked_body(control: Control) -> None:
    before = control.snapshot()
    chunk = b"x" * 1024
    data = (
        b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"400\r\n" + chunk + b"\r\n") * (MAX_REQUEST_BYTES // 1024 + 2)
        + b"0\r\n\r\n"
    )
    a = parse(await send_raw(control.sock, data))
    assert (a.status, a.code) == (413, "request_too_large")
    assert control.snapshot() == before


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),  # a TLS hello
        b"HELLO\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"\x00" * 64 + b"\r\n\r\n",
    ],
    ids=["tls", "word", "bad-header", "nul"],
)
async def test_garbage_gets_400_and_changes_nothing(control: Control, garbage: bytes) -> None:
    await control.store.create("laptop")
    before = control.snapshot()
    out = await send_raw(control.sock, garbage)
    assert parse(out).status == 400
    assert control.snapshot() == before
    # The server still serves.
    assert (await http(control.sock, "GET", "/v1/status")).status == 200


async def test_half_a_request_head_then_silence_is_cut_off(control: Control) -> None:
    before = control.snapshot()
    t0 = time.monotonic()
    # send_raw gives up (TimeoutError) after 30 s: a server that waited for good fails here.
    out = await send_raw(control.sock, b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Le")
    elapsed = time.monotonic() - t0
    assert out == b"" or parse(out).status >= 400
    # Cut by the request timeout, not before it (a busy machine can only make it later).
    assert elapsed >= REQUEST_TIMEOUT * 0.5, elapsed
    assert control.snapshot() == before


async def test_half_a_body_then_silence_gets_408(control: Control) -> None:
    before = control.snapshot()
    head = b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    t0 = time.monotonic()
    a = parse(await send_raw(control.sock, head + b'{"name": "hal'))
    elapsed = time.monotonic() - t0
    assert (a.status, a.code) == (408, "request_timeout")
    assert elapsed >= REQUEST_TIMEOUT * 0.5, elapsed
    assert control.snapshot() == before


async def test_internal_error_stays_in_the_log(
    control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    control.levers.fail_status = True
    with caplog.at_level(logging.ERROR, logger="localai_authd.control"):
        a = await http(control.sock, "GET", "/v1/status")
    assert a.status == 500
    assert a.doc == {
        "error": {"code": "internal_error", "message": "internal error; see the daemon's log"}
    }
    assert b"secret-internal-detail" not in a.body and b"Traceback" not in a.body
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret-internal-detail" in str(logged[0].exc_info[1])  # type: ignore[index]
    assert control.audit()[-1]["reason"] == "internal_error"


async def test_content_type_is_not_required(control: Control) -> None:
    data = request_bytes("POST", "/v1/keys", {"name": "plain"}).replace(
        b"Content-Type: application/json", b"Content-Type: text/plain"
    )
    assert parse(await send_raw(control.sock, data)).status == 201


async def test_client_leaving_mid_body_is_not_an_internal_error(control: Control) -> None:
    _r, w = await asyncio.open_unix_connection(str(control.sock))
    w.write(b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    await w.drain()
    w.close()
    await w.wait_closed()
    assert (await eventually(control.audit, what="an audit record"))[-1]["reason"] == "client_gone"
    assert control.snapshot() == []


async def test_close_lets_operations_in_flight_finish(control: Control) -> None:
    """An operation is never cut in half: close() waits for it (and the client leaving
    does not cancel it either)."""
    control.levers.reload_delay = 0.3
    _r, w = await asyncio.open_unix_connection(str(control.sock))
    w.write(request_bytes("POST", "/v1/reload"))
    await w.drain()
    await control.levers.reload_started.wait()
    w.close()
    await w.wait_closed()
    await control.server.close()
    assert control.levers.reloads == 1
    assert not control.sock.exists()
