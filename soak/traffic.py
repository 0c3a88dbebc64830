"""The soak's clients: each worker loops over a weighted mix of what real clients do, and what
they do wrong, until the deadline. Every answer is checked; an unexpected one is counted.

The wrong-doers (bad keys, heads cut short) come from loopback addresses of their own
(127.0.0.2 and up), as attackers would: the daemon throttles failed authentications per
source, and must go on serving the good client (127.0.0.1) while it refuses them (429).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Tally:
    done: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)

    def check(self, action: str, ok: bool, what: object) -> None:
        self.done[action] += 1
        if not ok:
            self.unexpected[f"{action}: {what}"] += 1


class Traffic:
    def __init__(self, url: str, port: int, key: str, tally: Tally, bad_ip: str) -> None:
        self.url, self.port, self.key, self.tally = url, port, key, tally
        self.auth = {"Authorization": f"Bearer {key}"}
        self.bad_ip = bad_ip  # where this worker's wrong-doing comes from
        self.bad_session: aiohttp.ClientSession | None = None

    async def small(self, s: aiohttp.ClientSession) -> None:
        async with s.get(self.url + "/api/tags", headers=self.auth) as r:
            await r.read()
            self.tally.check("small", r.status == 200, r.status)

    async def whole(self, s: aiohttp.ClientSession) -> None:
        body = {"model": "llama3", "prompt": "hi", "stream": False}
        async with s.post(self.url + "/api/generate", json=body, headers=self.auth) as r:
            doc = await r.json()
            self.tally.check("whole", r.status == 200 and doc.get("done") is True, r.status)

    async def ndjson_stream(self, s: aiohttp.ClientSession) -> None:
        body = {"model": "llama3", "prompt": "hi"}
        async with s.post(self.url + "/api/generate", json=body, headers=self.auth) as r:
            data = await r.read()
            self.tally.check("ndjson_stream", r.status == 200 and b'"done": true' in data, r.status)

    async def sse_stream(self, s: aiohttp.ClientSession) -> None:
        body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with s.post(self.url + "/v1/chat/completions", json=body, headers=self.auth) as r:
            data = await r.read()
            self.tally.check("sse_stream", r.status == 200 and b"[DONE]" in data, r.status)

    async def bad_key(self, _: aiohttp.ClientSession) -> None:
        s = self.bad_session
        assert s is not None
        bad = random.choice(
            [
                {"Authorization": "Bearer sk_local_" + secrets.token_hex(20)},
                {"x-api-key": self.key[:-1] + ("A" if self.key[-1] != "A" else "B")},
                {},
            ]
        )
        async with s.get(self.url + "/api/tags", headers=bad) as r:
            await r.read()
            # 429 once the source is throttled for its failed authentications.
            self.tally.check("bad_key", r.status in (400, 401, 429), r.status)

    async def leave_mid_stream(self, s: aiohttp.ClientSession) -> None:
        body = {"model": "llama3", "prompt": "hi"}
        r = await s.post(self.url + "/api/generate", json=body, headers=self.auth)
        first = await r.content.readany()
        r.close()  # the client goes away with the stream half read
        self.tally.check("leave_mid_stream", r.status == 200 and bool(first), r.status)

    async def leave_mid_head(self, _: aiohttp.ClientSession) -> None:
        _r, w = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.bad_ip, 0))
        w.write(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Le")
        await w.drain()
        w.close()
        await w.wait_closed()
        self.tally.check("leave_mid_head", True, None)

    def mix(self) -> list[tuple[str, int]]:
        return [
            ("small", 30),
            ("whole", 15),
            ("ndjson_stream", 15),
            ("sse_stream", 10),
            ("bad_key", 15),
            ("leave_mid_stream", 10),
            ("leave_mid_head", 5),
        ]

    async def worker(self, deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        names, weights = zip(*self.mix(), strict=True)
        loop = asyncio.get_running_loop()
        bad = aiohttp.TCPConnector(limit=0, local_addr=(self.bad_ip, 0))
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s,
            aiohttp.ClientSession(connector=bad) as self.bad_session,
        ):
            while loop.time() < deadline:
                action = rng.choices(names, weights)[0]
                try:
                    await asyncio.wait_for(getattr(self, action)(s), 60)
                except (aiohttp.ClientError, TimeoutError, OSError) as e:
                    self.tally.check(action, False, type(e).__name__)
