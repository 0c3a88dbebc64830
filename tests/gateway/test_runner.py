"""The aiohttp seam (runner.py) and the audit of requests aiohttp's parser refuses."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from localai_authd.gateway import runner as runner_mod
from localai_authd.gateway.parse_refusals import ParseRefusals
from localai_authd.gateway.runner import GatewayRunner, SeamBroken
from tests.conftest import GW, raw_request, status_of

MARK = "sk_local_MARKMARKMARK_" + "Zz9" * 17  # credential-shaped, so any echo is a leak

HEAD = "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
# One request per class of smuggling or malformation aiohttp refuses. Each carries MARK
# somewhere, so an echo (answer, audit, log) would show.
SMUGGLING: dict[str, bytes] = {
    "cl-and-te": (
        HEAD + f"X-M: {MARK}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).encode(),
    "duplicate-cl": (
        HEAD + f"X-M: {MARK}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"
    ).encode(),
    "obs-fold": (HEAD + f"X-M: a\r\n {MARK}\r\nContent-Length: 2\r\n\r\n{{}}").encode(),
    "obs-folded-te": (
        HEAD + f"X-M: {MARK}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
    ).encode(),
    "bare-lf": (
        f"POST /api/generate HTTP/1.1\nHost: x\nX-M: {MARK}\nContent-Length: 2\n\n{{}}"
    ).encode(),
    "cr-in-value": (HEAD + f"X-M: a\r{MARK}\r\nContent-Length: 2\r\n\r\n{{}}").encode(),
    "nul-in-value": (HEAD + f"X-M: a\x00{MARK}\r\nContent-Length: 2\r\n\r\n{{}}").encode(),
    "space-in-name": (HEAD + f"X M: {MARK}\r\nContent-Length: 2\r\n\r\n{{}}").encode(),
    "space-before-colon": (HEAD + f"X-M : {MARK}\r\nContent-Length: 2\r\n\r\n{{}}").encode(),
    "te-not-chunked-last": (
        HEAD + f"X-M: {MARK}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ).encode(),
    "te-xchunked": (HEAD + f"X-M: {MARK}\r\nTransfer-Encoding: xchunked\r\n\r\n").encode(),
    "cl-not-a-number": (HEAD + f"X-M: {MARK}\r\nContent-Length: +2\r\n\r\n{{}}").encode(),
    "invalid-chunk-size": (
        HEAD + f"X-M: {MARK}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    ).encode(),
    "chunk-size-overflow": (
        HEAD + f"X-M: {MARK}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "fffffffffffffffffff\r\n{}\r\n0\r\n\r\n"
    ).encode(),
    "oversize-header": (HEAD + f"X-M: {MARK}{'a' * 9000}\r\nContent-Length: 0\r\n\r\n").encode(),
    "oversize-request-line": (
        f"GET /api/tags?{MARK}{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode(),
    "bad-version": f"GET /api/tags?{MARK} HTTP/1.x\r\nHost: x\r\n\r\n".encode(),
    "bad-method": f"G(T /api/tags?{MARK} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "missing-host": f"GET /api/tags?{MARK} HTTP/1.1\r\nX-M: 1\r\n\r\n".encode(),
}


@pytest.mark.parametrize("case", list(SMUGGLING))
async def test_each_parser_refusal_is_answered_400_and_audited(gw: GW, case: str) -> None:
    resp = await raw_request(gw.port, SMUGGLING[case])
    assert status_of(resp) == 400, resp[:300]
    assert MARK.encode() not in resp and MARK[9:30].encode() not in resp
    assert b"Server: localai-authd" in resp
    rec = gw.audit()[-1]
    assert rec["reason"].startswith("http_parse_error:"), rec
    assert rec["reason"] != "http_parse_error:", rec
    assert (rec["kind"], rec["outcome"], rec["status"]) == ("request", "bad_request", 400)
    assert rec["client"] == "127.0.0.1"
    assert MARK[9:30] not in gw.audit_path.read_text()
    assert gw.upstream.seen == []


async def test_a_body_refused_after_its_head_ends_the_request_with_400(gw: GW) -> None:
    """The head is accepted (and authenticated); a bad chunk size arrives later. Without
    the quiet handler's data_received, the request would wait for its body forever."""
    key = await gw.key()
    r, w = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        w.write(
            f"{HEAD}Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\n{}\r\n".encode()
        )
        await w.drain()
        while not gw.gateway.in_flight:  # the handler is reading the body
            await asyncio.sleep(0.01)
        w.write(f"zz{MARK}\r\nab\r\n0\r\n\r\n".encode())
        await w.drain()
        out = await asyncio.wait_for(r.read(), 10)
    finally:
        w.close()
    assert status_of(out) == 400
    assert MARK.encode() not in out
    rec = gw.audit()[-1]
    assert rec["reason"] == "http_parse_error:BadHttpMessage"
    assert rec["key"] == "laptop"  # it was authenticated before its body broke
    assert gw.upstream.seen == []


async def _site(runner: web.AppRunner) -> int:
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(runner.addresses[0][1])


async def test_without_the_quiet_server_aiohttp_would_echo(gw: GW) -> None:
    """The control: the same app behind aiohttp's own runner echoes the offending line.
    This is what the seam check guards against; the gateway's runner does not echo."""
    req = SMUGGLING["cr-in-value"]
    plain = web.AppRunner(gw.gateway.make_app(0), access_log=None)
    try:
        echoed = await raw_request(await _site(plain), req)
    finally:
        await plain.cleanup()
    assert MARK[9:30].encode() in echoed  # aiohttp's own handler quotes the raw line
    assert b"aiohttp" in echoed  # and names itself and its version
    quiet = await raw_request(gw.port, req)
    assert MARK[9:30].encode() not in quiet and b"aiohttp" not in quiet


async def test_the_runner_refuses_to_start_if_aiohttp_built_another_server(gw: GW) -> None:
    class Unswitched(GatewayRunner):
        __slots__ = ()

        async def _make_server(self) -> web.Server:
            # What a future aiohttp could do: build the server some other way.
            return await web.AppRunner._make_server(self)

    runner = Unswitched(gw.gateway.make_app(0), access_log=None)
    with pytest.raises(SeamBroken):
        await runner.setup()
    assert runner.server is None  # cleaned up: nothing listens


def test_the_quiet_classes_add_no_state() -> None:
    assert runner_mod._QuietRequestHandler.__slots__ == ()
    assert runner_mod._QuietServer.__slots__ == ()
    # A handler has no __dict__: every attribute is one of aiohttp's slots.
    assert "__dict__" not in dir(runner_mod._QuietRequestHandler)


async def test_the_gateway_runner_builds_the_quiet_server(gw: GW) -> None:
    runner = GatewayRunner(web.Application(), access_log=None)
    try:
        await runner.setup()
        assert type(runner.server) is runner_mod._QuietServer
        assert isinstance(runner.server(), runner_mod._QuietRequestHandler)  # type: ignore[misc]
    finally:
        await runner.cleanup()


# ---- the per-source cap ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cap(per_source: int = 3, max_sources: int = 100) -> tuple[ParseRefusals, list[dict], _Clock]:
    written: list[dict] = []
    clock = _Clock()
    ids = iter(range(10**6))
    cap = ParseRefusals(
        written.append,
        lambda: f"{next(ids):016x}",
        per_source=per_source,
        window=60,
        max_sources=max_sources,
        clock=clock,
    )
    return cap, written, clock


class BadHttpMessage(Exception):
    pass


def test_a_flood_from_one_source_is_capped_then_summarized() -> None:
    cap, written, clock = _cap()
    for _ in range(100):
        cap.refused("10.0.0.1", BadHttpMessage())
    cap.refused("10.0.0.2", ValueError())
    assert [r["client"] for r in written] == ["10.0.0.1"] * 3 + ["10.0.0.2"]
    clock.now += 61  # the next window: the summary of the last one comes first
    cap.refused("10.0.0.1", BadHttpMessage())
    summary = written[4]
    assert summary["reason"] == "http_parse_error:suppressed"
    assert summary["suppressed"] == 97
    assert summary["suppressed_by_class"] == {"BadHttpMessage": 97}
    assert written[5]["reason"] == "http_parse_error:BadHttpMessage"
    assert len(written) == 6


def test_many_sources_share_one_bucket_past_the_limit() -> None:
    cap, written, _ = _cap(per_source=1, max_sources=10)
    for i in range(1000):
        cap.refused(f"10.0.{i // 256}.{i % 256}", BadHttpMessage())
    assert len(written) == 11  # ten sources, then the shared "*" bucket's one record
    cap.flush()
    assert written[-1]["client"] == "*" and written[-1]["suppressed"] == 989


async def test_the_summary_is_written_when_the_window_closes(gw: GW) -> None:
    caps = gw.gateway.parse_refusals
    caps.per_source, caps.window = 2, 0.3
    for _ in range(6):
        assert status_of(await raw_request(gw.port, SMUGGLING["bare-lf"])) == 400
    for _ in range(500):  # bounded: 5 s
        if any(r["reason"] == "http_parse_error:suppressed" for r in gw.audit()):
            break
        await asyncio.sleep(0.01)
    reasons = [r["reason"] for r in gw.audit()]
    assert reasons.count("http_parse_error:BadStatusLine") == 2
    assert reasons.count("http_parse_error:suppressed") == 1
    assert gw.audit()[-1]["suppressed"] == 4


def test_ipv6_sources_are_counted_by_their_64() -> None:
    cap, written, _ = _cap(per_source=2)
    for i in range(50):
        cap.refused(f"2001:db8:1:2::{i:x}", BadHttpMessage())
    assert len(written) == 2
    cap.flush()
    assert written[-1]["client"] == "2001:db8:1:2::/64" and written[-1]["suppressed"] == 48
