"""Forwarding to the upstream, streaming the answer back chunk by chunk.

The stream: one ClientSession for the app's lifetime; auto_decompress off;
no total timeout but a first-byte and an idle-read timeout; no connection cap that would
silently queue the 101st stream; never follow redirects or read proxy settings from the
environment; iter chunks as they come and write them as they are (never re-split).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..audit import RequestOutcome
from ..config import Upstream
from . import headers as hdrs
from .errors import SERVER, Refusal
from .tokencount import TokenMeter

# aiohttp would add these unless told not to; the client's own (if any) pass through.
_SKIP_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,  # no global cap: aiohttp's default 100 silently queues stream 101
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO,
    )


@dataclass
class Outcome:
    status: int = 0
    bytes_out: int = 0
    outcome: RequestOutcome = "ok"
    reason: str = "ok"
    meter: TokenMeter | None = None  # fed the answer's bytes as they pass (token counting)
    first_byte: float = 0.0  # time.monotonic() when the upstream's answer began (metrics)


async def stream_body(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    """The client's body as it arrives (uploads), cut off at ``limit``."""
    n = 0
    async for chunk in content.iter_any():
        n += len(chunk)
        if n > limit:
            raise Refusal(
                413, "body_too_large", f"request body is over {limit} bytes", "bad_request"
            )
        yield chunk


def _stream_error_line(content_type: str, code: str, message: str, needs_newline: bool) -> bytes:
    """An error in the stream's own format, so SDKs show why the stream ended; ``code`` is
    the audit record's reason, as in a refusal's body."""
    lead = b"\n" if needs_newline else b""
    if "text/event-stream" in content_type:
        ev = {"error": {"message": message, "type": "api_error", "code": code}}
        return lead + b"data: " + json.dumps(ev).encode() + b"\n\n"
    if "ndjson" in content_type or "json" in content_type:
        return lead + json.dumps({"error": message}).encode() + b"\n"
    return b""


@functools.lru_cache(maxsize=16)
def _client_timeout(connect: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=connect)


class _FirstByte:
    """``asyncio.timeout(limit)`` for the wait for the upstream's answer, on one timer handle.

    The same contract (the task is cancelled when the time is up, and that cancellation
    leaves the block as TimeoutError; anyone else's cancellation stays a cancellation),
    without the general machinery for rescheduling and nesting (about 3 % of a small
    request's CPU; bench/).
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_limit", "_task")

    def __init__(self, limit: float) -> None:
        self._limit = limit
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("_FirstByte must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = asyncio.get_running_loop().call_later(self._limit, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self._handle.cancel()
        # Ours: the cancellation we asked for, and no one else's since we entered (as asyncio's).
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc


async def open_upstream(
    session: aiohttp.ClientSession,
    method: str,
    upstream: Upstream,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
) -> aiohttp.ClientResponse:
    """The upstream's answer, its headers read; failures become 502/504 refusals."""
    url = URL(upstream.url + target, encoded=True)
    timeout = _client_timeout(upstream.connect_timeout)
    try:
        async with _FirstByte(upstream.first_byte_timeout):
            return await session.request(
                method,
                url,
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
                timeout=timeout,
                compress=False,
            )
    except TimeoutError:
        raise Refusal(
            504,
            "upstream_timeout",
            f"the upstream sent no answer within {upstream.first_byte_timeout:g}s",
            "upstream_error",
        ) from None
    except aiohttp.ClientConnectorError as e:
        raise Refusal(
            502,
            "upstream_unreachable",
            f"cannot reach the upstream: {e.strerror or e}",
            "upstream_error",
        ) from None
    except aiohttp.ServerTimeoutError:
        raise Refusal(
            502, "upstream_unreachable", "connecting to the upstream timed out", "upstream_error"
        ) from None
    except aiohttp.ClientError as e:
        raise Refusal(
            502, "upstream_error", f"the upstream failed: {type(e).__name__}", "upstream_error"
        ) from None


async def forward(
    session: aiohttp.ClientSession,
    request: web.Request,
    upstream: Upstream,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
    out: Outcome,
) -> web.StreamResponse:
    up = await open_upstream(session, request.method, upstream, target, headers, body)
    try:
        return await _relay(request, up, upstream, out)
    finally:
        # close(), not release(): a stream cut short must end the upstream request too,
        # so the GPU stops generating for a client that is gone.
        if not up.closed:
            up.close()


class _ReadDeadline:
    """The first-byte and idle-read timeouts of one relay, on one timer for the whole stream.

    ``asyncio.timeout()`` around every read costs a timer-heap push and a cancel per chunk
    (measurable per-chunk CPU at 200 streams in bench/). Here a read costs two attribute writes;
    the timer wakes only when a wait could have run out and re-arms for the wait in progress.
    On expiry the upstream reader gets a TimeoutError, which the pending readany() raises,
    exactly as the timeout context did.
    """

    __slots__ = ("_handle", "_limit", "_loop", "_reader", "_started", "_waiting", "_when")

    def __init__(self, reader: aiohttp.StreamReader) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._handle: asyncio.TimerHandle | None = None
        self._when = math.inf
        self._started = 0.0
        self._limit = 0.0
        self._waiting = False

    def begin(self, limit: float) -> None:
        """A read that may wait starts now; it may wait ``limit`` seconds."""
        now = self._loop.time()
        self._started, self._limit, self._waiting = now, limit, True
        if now + limit < self._when:
            self._arm(now + limit)

    def end(self) -> None:
        self._waiting = False

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle, self._when = None, math.inf
        if not self._waiting:
            return  # the next begin() re-arms
        due = self._started + self._limit
        if self._loop.time() >= due:
            self._reader.set_exception(TimeoutError())
        else:
            self._arm(due)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _HeadersWithFirstChunk(web.StreamResponse):
    """A stream whose first chunk is already here: the headers wait for it and leave in the
    same write (one send() less per stream, and the first token arrives sooner; bench/).
    Only ever used when that chunk is in hand, so the headers are never held back. (aiohttp's
    own switch; were it gone, headers would simply go out first, as before.)"""

    _send_headers_immediately = False


async def _relay(
    request: web.Request, up: aiohttp.ClientResponse, upstream: Upstream, out: Outcome
) -> web.StreamResponse:
    headers = [("Server", SERVER), *hdrs.to_client(up.headers.items())]
    length = up.content_length
    out.status = up.status
    out.first_byte = time.monotonic()
    content = up.content
    meter = out.meter
    if meter is not None:
        meter.start(up.headers.get("Content-Type", ""))
    # Whatever of the body is already here (usually all of a non-streaming reply, and the
    # first chunk of a stream, which servers send with their headers).
    early = content.read_nowait() if content.exception() is None else b""
    if (
        length is not None
        and len(early) == length
        and content.is_eof()
        and request.method != "HEAD"
        and up.status not in (204, 304)
    ):
        # The whole answer: headers and body leave in one write instead of two (one send()
        # less per request, measured in bench/).
        whole = web.Response(status=up.status, reason=up.reason, headers=headers, body=early)
        await whole.prepare(request)
        out.bytes_out += length
        if meter is not None:
            meter.feed(early)
        await whole.write_eof()
        return whole
    resp = (_HeadersWithFirstChunk if early else web.StreamResponse)(
        status=up.status, reason=up.reason
    )
    for k, v in headers:
        resp.headers.add(k, v)
    if length is not None:
        resp.content_length = length
    elif request.version >= (1, 1) and request.method != "HEAD" and up.status not in (204, 304):
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    first = not early
    last = early or b"\n"
    if early:
        out.bytes_out += len(early)
        if meter is not None:
            meter.feed(early)
        await resp.write(early)
    deadline = _ReadDeadline(content)
    try:
        while True:
            try:
                deadline.begin(upstream.first_byte_timeout if first else upstream.idle_timeout)
                chunk = await content.readany()
                deadline.end()
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
                stalled = isinstance(e, TimeoutError)
                out.outcome = "upstream_stalled" if stalled else "upstream_error"
                out.reason = "upstream_idle_timeout" if stalled else "upstream_reset"
                message = (
                    f"the upstream went silent for {upstream.idle_timeout:g}s mid-stream"
                    if stalled
                    else "the upstream connection broke mid-stream"
                )
                tail = _stream_error_line(
                    up.headers.get("Content-Type", ""),
                    out.reason,
                    message,
                    not last.endswith(b"\n"),
                )
                if tail and length is None:
                    await resp.write(tail)
                # End the client's stream as an error: no terminating chunk, connection closed.
                resp.force_close()
                if request.transport is not None:
                    request.transport.close()
                return resp
            if not chunk:
                break
            first = False
            last = chunk
            out.bytes_out += len(chunk)
            if meter is not None:
                meter.feed(chunk)
            await resp.write(chunk)
    finally:
        deadline.close()
    await resp.write_eof()
    return resp
