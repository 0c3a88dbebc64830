"""Load generators: wrk (C) for request/response, a raw asyncio client for streams.

The stream client does as little as possible while data arrives: each read is stored with
its arrival time (CLOCK_MONOTONIC) and nothing else. Framing, message boundaries, gaps,
transit times and digests are worked out afterwards, outside the measured window.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TERMINATOR = b"\r\n0\r\n\r\n"
_STAMP = re.compile(rb'"created(?:_at)?":(\d+)')

WRK_LUA = r"""
local good = "Bearer %(good)s"
local bad = "Bearer %(bad)s"
local bad_every = %(bad_every)d
local body = '{"model":"bench","prompt":"hi","stream":false}'
local n = 0
request = function()
  n = n + 1
  local h = {["Content-Type"] = "application/json", ["X-Bench-Mode"] = "w1"}
  local path = "/api/generate?bench-mode=w1"
  if bad_every > 0 and n %% bad_every == 0 then
    h["Authorization"] = bad
    h["X-Bench-Bad"] = "1"
    path = path .. "&bench-bad=1"
  else
    h["Authorization"] = good
  end
  return wrk.format("POST", path, h, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,' ..
    '"max":%%d,"mean":%%f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def run_wrk(
    port: int,
    conns: int,
    seconds: float,
    good: str,
    bad: str,
    bad_every: int = 0,
    cpu: str | None = "1",
) -> dict[str, Any]:
    """One wrk run against 127.0.0.1:port; the latency histogram is wrk's own (µs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % {"good": good, "bad": bad, "bad_every": bad_every})
        script = f.name
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        script,
        f"http://127.0.0.1:{port}/api/generate",
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        Path(script).unlink()
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            doc: dict[str, Any] = json.loads(line[10:])
            return doc
    raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")


# ---- streams ---------------------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """One connection; requests one after another (keep-alive); reads stamped on arrival."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reads: list[tuple[int, bytes]] = []
        self.tail = b""
        self.done: asyncio.Future[None] | None = None
        self.t_sent = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, req: bytes) -> asyncio.Future[None]:
        assert self.transport is not None
        self.reads = []
        self.tail = b""
        self.done = asyncio.get_running_loop().create_future()
        self.t_sent = time.monotonic_ns()
        self.transport.write(req)
        return self.done

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.monotonic_ns(), data))
        tail = self.tail + data[-8:]
        self.tail = tail[-8:]
        if tail.endswith(TERMINATOR) and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)


def stream_request(
    path: str, key: str, mode: str, chunks: int, pace_us: int, sid: str, bad: bool = False
) -> bytes:
    if mode == "sse":
        body = b'{"model":"bench","messages":[{"role":"user","content":"hi"}],"stream":true}'
    else:
        body = b'{"model":"bench","prompt":"hi","stream":true}'
    query = f"bench-mode={mode}&bench-chunks={chunks}&bench-pace-us={pace_us}&bench-id={sid}"
    if bad:
        query += "&bench-bad=1"
    lines = [
        f"POST {path}?{query} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"X-Bench-Mode: {mode}",
        f"X-Bench-Chunks: {chunks}",
        f"X-Bench-Pace-Us: {pace_us}",
        f"X-Bench-Id: {sid}",
        f"Content-Length: {len(body)}",
    ]
    if bad:
        lines.append("X-Bench-Bad: 1")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class StreamResult:
    sid: str
    status: int = 0
    messages: int = 0
    expected: int = 0
    ttfb_ns: int = -1
    gaps_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    transit_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    delivering_reads: int = 0
    sha256: str = ""
    error: str = ""


def decode(
    sid: str, reads: list[tuple[int, bytes]], t_sent: int, mode: str, expected: int
) -> StreamResult:
    """Framing → body → messages, each with the arrival time of its last byte."""
    r = StreamResult(sid=sid, expected=expected)
    if not reads:
        r.error = "no response"
        return r
    raw = b"".join(d for _, d in reads)
    ends: list[int] = []
    pos = 0
    for _, d in reads:
        pos += len(d)
        ends.append(pos)
    times = [t for t, _ in reads]

    def arrival(raw_off: int) -> tuple[int, int]:
        i = bisect.bisect_right(ends, raw_off)
        return times[i], i

    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        r.error = "incomplete head"
        return r
    head = raw[:head_end].decode("latin-1").split("\r\n")
    r.status = int(head[0].split(" ")[1])
    hl = {line.partition(":")[0].strip().lower(): line.partition(":")[2].strip() for line in head}
    pieces: list[tuple[int, int]] = []  # raw [start, end) of body bytes
    p = head_end + 4
    if hl.get("transfer-encoding", "").lower() == "chunked":
        while True:
            le = raw.find(b"\r\n", p)
            if le < 0:
                r.error = "truncated chunked body"
                break
            size = int(raw[p:le].split(b";")[0], 16)
            if size == 0:
                break
            if le + 2 + size > len(raw):
                r.error = "truncated chunk"
                pieces.append((le + 2, len(raw)))
                break
            pieces.append((le + 2, le + 2 + size))
            p = le + 2 + size + 2
    else:
        n = int(hl.get("content-length", "0") or 0)
        pieces.append((p, min(p + n, len(raw))))
    body = b"".join(raw[a:b] for a, b in pieces)
    r.sha256 = hashlib.sha256(body).hexdigest()
    if r.status != 200 or not pieces:
        r.error = r.error or f"status {r.status}"
        return r
    r.ttfb_ns = arrival(pieces[0][0])[0] - t_sent
    starts = [0]
    for a, b in pieces:
        starts.append(starts[-1] + (b - a))
    sep = b"\n\n" if mode == "sse" else b"\n"
    arrivals: list[int] = []
    read_idx: set[int] = set()
    off = body.find(sep)
    while off >= 0:
        last = off + len(sep) - 1  # body offset of the message's last byte
        k = bisect.bisect_right(starts, last) - 1
        t, i = arrival(pieces[k][0] + last - starts[k])
        arrivals.append(t)
        read_idx.add(i)
        off = body.find(sep, last + 1)
    stamps = [int(m) for m in _STAMP.findall(body)]
    if mode == "sse" and body.endswith(b"data: [DONE]\n\n"):
        arrivals.pop()  # [DONE] travels in the same write as the last event
    r.messages = len(arrivals)
    r.delivering_reads = len(read_idx)
    arr = np.asarray(arrivals, np.int64)
    if len(stamps) == len(arrivals):
        r.transit_ns = arr - np.asarray(stamps, np.int64)
    elif not r.error:
        r.error = "message/stamp mismatch"
    # The first gap depends on where in the upstream's tick the stream began: not a gap.
    r.gaps_ns = np.diff(arr)[1:] if len(arr) > 2 else np.empty(0, np.int64)
    return r


async def _connect(port: int) -> _Client:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Client, "127.0.0.1", port)
    return proto


async def run_streams(
    port: int,
    key: str,
    *,
    n: int,
    mode: str,
    chunks: int,
    pace_us: int,
    cell: str,
    timeout: float,
    open_batch: int = 100,
) -> list[StreamResult]:
    """``n`` concurrent streams, one per connection; returns one result per stream."""
    path = "/v1/chat/completions" if mode == "sse" else "/api/generate"
    clients: list[_Client] = []
    try:
        for i in range(0, n, open_batch):
            clients += await asyncio.gather(
                *(_connect(port) for _ in range(min(open_batch, n - i)))
            )
        sids = [f"{cell}-{i}" for i in range(n)]
        futs = [
            c.send(stream_request(path, key, mode, chunks, pace_us, sid))
            for c, sid in zip(clients, sids, strict=True)
        ]
        _, pending = await asyncio.wait(futs, timeout=timeout)
        results = []
        for c, sid, f in zip(clients, sids, futs, strict=True):
            r = decode(sid, c.reads, c.t_sent, mode, chunks)
            if f in pending and not r.error:
                r.error = "timeout"
            results.append(r)
        return results
    finally:
        for c in clients:
            if c.transport is not None:
                c.transport.close()


async def run_sequential(
    port: int, key: str, *, count: int, chunks: int, pace_us: int, cell: str, timeout: float
) -> list[StreamResult]:
    """``count`` short streams one after another on one kept-alive connection (TTFB)."""
    c = await _connect(port)
    results = []
    deadline = time.monotonic() + timeout
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            sid = f"{cell}-{i}"
            fut = c.send(stream_request("/api/generate", key, "ndjson", chunks, pace_us, sid))
            try:
                await asyncio.wait_for(fut, 10)
            except TimeoutError:
                results.append(StreamResult(sid=sid, expected=chunks, error="timeout"))
                break
            results.append(decode(sid, c.reads, c.t_sent, "ndjson", chunks))
            if c.closed.done():
                break
    finally:
        if c.transport is not None:
            c.transport.close()
    return results


class IdleStreams:
    """Streams whose first byte is late: opened, then held open until the upstream releases."""

    def __init__(self) -> None:
        self.clients: list[_Client] = []
        self.futs: list[asyncio.Future[None]] = []
        self.sids: list[str] = []

    async def open(self, port: int, key: str, n: int, cell: str, batch: int = 100) -> None:
        for i in range(0, n, batch):
            cs = await asyncio.gather(*(_connect(port) for _ in range(min(batch, n - i))))
            for j, c in enumerate(cs):
                sid = f"{cell}-idle-{i + j}"
                self.sids.append(sid)
                self.futs.append(c.send(stream_request("/api/generate", key, "idle", 2, 0, sid)))
            self.clients += cs

    async def finish(self, timeout: float) -> list[StreamResult]:
        if self.futs:
            await asyncio.wait(self.futs, timeout=timeout)
        out = [
            decode(sid, c.reads, c.t_sent, "ndjson", 2)
            for c, sid in zip(self.clients, self.sids, strict=True)
        ]
        for c in self.clients:
            if c.transport is not None:
                c.transport.close()
        return out


async def simple_request(port: int, req: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on its own connection (Connection: close); (status, body)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(req)
        async with asyncio.timeout(timeout):
            data = await r.read()
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if b"transfer-encoding: chunked" in head.lower():
        out, p = b"", 0
        while True:
            le = body.find(b"\r\n", p)
            size = int(body[p:le], 16)
            if size == 0:
                break
            out += body[le + 2 : le + 2 + size]
            p = le + 2 + size + 2
        body = out
    return status, body


def w1_request(key: str, bad: bool = False, close: bool = True) -> bytes:
    body = b'{"model":"bench","prompt":"hi","stream":false}'
    lines = [
        "POST /api/generate?bench-mode=w1" + ("&bench-bad=1" if bad else "") + " HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "X-Bench-Mode: w1",
        f"Content-Length: {len(body)}",
    ]
    if bad:
        lines.append("X-Bench-Bad: 1")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
