"""The bench's upstream: lean enough never to be the bottleneck.

A raw asyncio protocol on the stdlib loop, not an aiohttp app: HTTP/1.1 with keep-alive,
a fixed small JSON reply for W1/W5, and for streams ONE timer per pacing that writes the next
chunk to every open stream on each tick (as a batching inference server emits one token per
sequence per decoding step). Each chunk carries its send time (CLOCK_MONOTONIC, shared by
every process on the host) so the client can measure per-chunk transit.

What it sees is the correctness evidence: requests marked ``X-Bench-Bad`` (a bad key) must
never arrive through a gateway; requests carrying a credential header must never arrive
through one either; and a SHA-256 of every stream body as sent is kept by stream id so the
client can prove the bytes it got are the bytes sent.

Control endpoints (``/_bench/...``) are for the harness only, on a direct connection.

    python -m bench.upstream --port 18001
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import threading
import time
import urllib.parse
from typing import Any

W1_BODY = (
    b'{"model":"bench","created_at":"2026-01-01T00:00:00Z","response":"Hello from the bench '
    b'upstream.","done":true,"done_reason":"stop","total_duration":1,"eval_count":7}'
)
W1_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: %d\r\n\r\n" % len(W1_BODY)
) + W1_BODY
STREAM_HEAD = {
    "ndjson": b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    "sse": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
}
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


def frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def message(mode: str, seq: int, last: bool) -> bytes:
    now = time.monotonic_ns()
    if mode == "ndjson":
        if last:
            return (
                b'{"model":"bench","created_at":%d,"response":"","done":true,'
                b'"done_reason":"stop","eval_count":%d}\n' % (now, seq)
            )
        return b'{"model":"bench","created_at":%d,"response":"tok%05d ","done":false}\n' % (
            now,
            seq,
        )
    finish = b'"stop"' if last else b"null"
    text = b"" if last else b"tok%05d " % seq
    ev = (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,'
        b'"model":"bench","choices":[{"index":0,"delta":{"content":"%s"},'
        b'"finish_reason":%s}]}\n\n' % (now, text, finish)
    )
    return ev + b"data: [DONE]\n\n" if last else ev


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.bad_seen = 0  # requests marked as carrying a bad key that got through
        self.cred_seen = 0  # requests that still carried Authorization / x-api-key
        self.streams_done = 0
        self.streams_cut = 0  # client (or gateway) went away mid-stream
        self.lateness_us: list[int] = []  # how late each tick fired: the upstream's own pacing
        self.digests: dict[str, str] = {}


class Stream:
    __slots__ = ("conn", "mode", "n", "seq", "sha", "sid")

    def __init__(self, conn: Conn, mode: str, n: int, sid: str) -> None:
        self.conn = conn
        self.mode = mode
        self.n = n
        self.seq = 0
        self.sha = hashlib.sha256()
        self.sid = sid

    def send_next(self) -> bool:
        """Write one message; True when the stream has ended."""
        self.seq += 1
        last = self.seq >= self.n
        msg = message(self.mode, self.seq, last)
        self.sha.update(msg)
        out = frame(msg)
        if last:
            out += b"0\r\n\r\n"
        self.conn.transport.write(out)
        if last:
            self.conn.server.finish(self)
        return last


class Pacer:
    """One timer for every stream at this pacing: each tick writes one chunk to each.

    The timer is a thread sleeping to absolute deadlines (clock_nanosleep precision) that
    wakes the loop; the loop's own timers have whole-millisecond granularity (epoll_wait),
    which makes the gap distribution bimodal and its median meaningless at the 50 µs scale.
    A tick the loop has not run yet is never doubled up: the next one is skipped instead.
    """

    def __init__(self, server: Server, pace: float) -> None:
        self.server = server
        self.pace = pace
        self.streams: dict[Stream, None] = {}  # insertion-ordered set
        self.stop: threading.Event | None = None  # the running ticker's off switch
        self.idle = 0
        self.pending = False
        self.loop = asyncio.get_running_loop()

    def add(self, s: Stream) -> None:
        self.streams[s] = None
        if self.stop is None:
            self.stop, self.idle = threading.Event(), 0
            threading.Thread(target=self._run, args=(self.stop,), daemon=True).start()

    def _run(self, stop: threading.Event) -> None:
        due = time.monotonic() + self.pace
        while not stop.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not self.pending:
                self.pending = True
                self.loop.call_soon_threadsafe(self.tick, due, stop)
            due += self.pace
            now = time.monotonic()
            if due < now:  # fell behind by a whole period: don't burst to catch up
                due = now + self.pace

    def tick(self, due: float, stop: threading.Event) -> None:
        """On the loop. Decides here (not in the thread) when the ticker stops: no race
        with add()."""
        self.pending = False
        if stop.is_set():
            return
        if not self.streams:
            self.idle += 1
            if self.idle >= 3:
                stop.set()
                self.stop = None
            return
        self.idle = 0
        lat = self.server.stats.lateness_us
        if len(lat) < 2_000_000:
            lat.append(int((time.monotonic() - due) * 1e6))
        for s in list(self.streams):
            s.send_next()


class Conn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.stream: Stream | None = None
        self.idle: tuple[str, str] | None = None  # (mode, sid) while held before its first byte

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.server.drop(self.stream)
            self.stream = None
        self.server.idle.pop(self, None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            hdrs: dict[str, str] = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0") or 0)
            if n > MAX_BODY or "transfer-encoding" in hdrs:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()
                return
            if len(self.buf) < end + 4 + n:
                return
            self.buf = self.buf[end + 4 + n :]
            method, target, _ = head[0].split(" ", 2)
            self.server.handle(self, method, target, hdrs)


class Server:
    def __init__(self) -> None:
        self.stats = Stats()
        self.pacers: dict[int, Pacer] = {}
        self.idle: dict[Conn, tuple[str, str]] = {}

    # ---- requests ----------------------------------------------------------------------

    def handle(self, c: Conn, method: str, target: str, h: dict[str, str]) -> None:
        if target.startswith("/_bench/"):
            self.control(c, method, target)
            return
        # The harness's instructions also come in the query (bench-mode=...): the gateway
        # forwards only an allow-list of client headers, so X-Bench-* stop there.
        _, _, query = target.partition("?")
        for k, v in urllib.parse.parse_qsl(query):
            if k.startswith("bench-"):
                h["x-" + k] = v
        st = self.stats
        st.requests += 1
        if "x-bench-bad" in h:
            st.bad_seen += 1
        if "authorization" in h or "x-api-key" in h:
            st.cred_seen += 1
        mode = h.get("x-bench-mode", "w1")
        if mode == "w1":
            c.transport.write(W1_RESPONSE)
            if h.get("connection", "").lower() == "close":
                c.transport.close()
            return
        sid = h.get("x-bench-id", "")
        if mode == "idle":  # first byte late: nothing until the harness releases it
            self.idle[c] = ("ndjson", sid)
            return
        n = int(h.get("x-bench-chunks", "10"))
        pace_us = int(h.get("x-bench-pace-us", "10000"))
        s = Stream(c, mode, n, sid)
        c.stream = s
        # Headers and the first chunk at once (the first token is ready), then one per tick.
        c.transport.write(STREAM_HEAD[mode])
        if s.send_next():
            return
        pacer = self.pacers.get(pace_us)
        if pacer is None:
            pacer = self.pacers[pace_us] = Pacer(self, pace_us / 1e6)
        pacer.add(s)

    def finish(self, s: Stream) -> None:
        self.stats.digests[s.sid] = s.sha.hexdigest()
        self.stats.streams_done += 1
        s.conn.stream = None
        for p in self.pacers.values():
            p.streams.pop(s, None)

    def drop(self, s: Stream) -> None:
        self.stats.streams_cut += 1
        for p in self.pacers.values():
            p.streams.pop(s, None)

    def release(self, chunks: int) -> int:
        """End the wait of every idle stream: headers and ``chunks`` lines in one write."""
        held = list(self.idle.items())
        self.idle.clear()
        for c, (mode, sid) in held:
            s = Stream(c, mode, chunks, sid)
            c.stream = s
            out = [STREAM_HEAD[mode]]
            for i in range(1, chunks + 1):
                msg = message(mode, i, i == chunks)
                s.sha.update(msg)
                out.append(frame(msg))
            out.append(b"0\r\n\r\n")
            c.transport.write(b"".join(out))
            self.finish(s)
        return len(held)

    # ---- the harness's side door ---------------------------------------------------------

    def control(self, c: Conn, method: str, target: str) -> None:
        path, _, query = target.partition("?")
        st = self.stats
        doc: Any
        if path == "/_bench/stats":
            lat = st.lateness_us
            lat_sorted = sorted(lat)
            doc = {
                "requests": st.requests,
                "bad_seen": st.bad_seen,
                "cred_seen": st.cred_seen,
                "streams_done": st.streams_done,
                "streams_cut": st.streams_cut,
                "idle_pending": len(self.idle),
                "ticks": len(lat),
                "tick_late_p99_us": lat_sorted[int(len(lat) * 0.99)] if lat else 0,
                "tick_late_max_us": lat_sorted[-1] if lat else 0,
            }
            if query == "reset=1":
                st.lateness_us = []
        elif path == "/_bench/digests":
            prefix = query.removeprefix("prefix=")
            doc = {k: v for k, v in st.digests.items() if k.startswith(prefix)}
            for k in doc:
                del st.digests[k]
        elif path == "/_bench/release" and method == "POST":
            chunks = int(query.removeprefix("chunks=") or 2)
            doc = {"released": self.release(chunks)}
        else:
            doc = {"error": "unknown"}
        body = json.dumps(doc).encode()
        c.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        c.transport.close()


async def serve(host: str, port: int) -> None:
    server = Server()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Conn(server), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {os.getpid()} {host}:{port}", flush=True)
    await stop.wait()
    srv.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop (faster I/O, but its timers have 1 ms granularity and drift)",
    )
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "::1"):
        raise SystemExit("the bench upstream listens on loopback only")
    if a.uvloop:
        import uvloop

        uvloop.run(serve(a.host, a.port))
    else:
        # The stdlib loop: a timer never fires early and the schedule is absolute, so the
        # pacing is exact on average (each tick < 1 ms late: epoll_wait's granularity).
        asyncio.run(serve(a.host, a.port))


if __name__ == "__main__":
    main()
