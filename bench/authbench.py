"""Run with the PRODUCT's interpreter (.venv/bin/python): the key store, in-process.

    python bench/authbench.py seed STATE_DIR      → {"key": ...} (creates key "bench")
    python bench/authbench.py time [--n N]        → per-call cost of KeyStore.verify and of the
                                                     whole credential check, by kind of key

The timing loop calls verify() on the real store (real file keyring, real pepper), the way the
gateway does on every request; min-of-batches per-call cost, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from multidict import CIMultiDict

from localai_authd.gateway import credentials
from localai_authd.keys import format as keyformat
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault


async def seed(state_dir: Path) -> dict[str, str]:
    store = KeyStore(open_vault("file", state_dir))
    await store.load()
    try:
        issued = await store.create("bench")
        return {"key": issued.key, "kid": issued.identity.kid}
    finally:
        await store.close()


def _per_call_us(fn: object, arg: str, n: int, batches: int = 15) -> dict[str, float]:
    f = fn  # type: ignore[assignment]
    per: list[float] = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(arg)  # type: ignore[operator]
        per.append((time.perf_counter_ns() - t0) / n / 1000)
    return {"min_us": round(min(per), 3), "median_us": round(statistics.median(per), 3)}


async def timing(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="authbench-") as d:
        store = KeyStore(open_vault("file", Path(d)))
        await store.load()
        try:
            for i in range(200):  # a realistic table: the lookup is O(1) either way
                await store.create(f"k{i}")
            good = (await store.create("bench")).key
            kid = good[len(keyformat.PREFIX) : len(keyformat.PREFIX) + keyformat.KID_LEN]
            kinds = {
                "good": good,
                "wrong_secret_known_kid": keyformat.mint(kid),
                "unknown_kid": keyformat.mint(keyformat.new_kid()),
                "bad_checksum": good[:-1] + ("A" if good[-1] != "A" else "B"),
                "legacy_unknown": secrets.token_urlsafe(32),
            }
            assert store.verify(good) is not None
            out: dict[str, object] = {}
            for name, key in kinds.items():
                v = _per_call_us(store.verify, key, n)
                # The gateway's own path: aiohttp's multidict and its two lookups.
                headers = CIMultiDict(
                    [
                        ("Host", "127.0.0.1:11435"),
                        ("Content-Type", "application/json"),
                        ("Authorization", f"Bearer {key}"),
                    ]
                )

                def full(h: CIMultiDict[str]) -> object:
                    c = credentials.extract_from(
                        h.getall("Authorization", ()), h.getall("x-api-key", ())
                    )
                    return store.verify(c.secret) if c is not None else None

                w = _per_call_us(full, headers, n)  # type: ignore[arg-type]
                out[name] = {"verify": v, "extract_and_verify": w}
            return out
        finally:
            await store.close()


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("state_dir", type=Path)
    t = sub.add_parser("time")
    t.add_argument("--n", type=int, default=2000)
    a = p.parse_args()
    if a.cmd == "seed":
        print(json.dumps(asyncio.run(seed(a.state_dir))))
    else:
        print(json.dumps(asyncio.run(timing(a.n))))


if __name__ == "__main__":
    main()
