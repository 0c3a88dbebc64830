"""Run with the PRODUCT's interpreter (.venv/bin/python): the cost of reading a request body.

    python bench/bodybench.py [--n N]   → per-body cost, before and after, and their ratio

"before" is the body check the gateway had until this round (``json.loads`` and a look at
``model``/``name``), copied here as the baseline; "after" is what it does now: the body read
the way Go's encoding/json reads it (gateway/body.py: strict UTF-8, every object's keys
checked for duplicates and case/fold collisions, numbers bounded, the top level's keys lower
case), the declared model fields read (policy.models_in_body) and checked against a glob
(policy.decide_body, modelref). Both in the same run, alternated batch by batch; min-of-
batches per body, in microseconds. Bodies: a 1 MB /api/embed body as a list of 2,000 strings,
the same as one string, a 1 MB /v1/embeddings body as token ids, and W1's small generate body.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from localai_authd.gateway import body, policy, routes

EMBED = routes.match("POST", "/api/embed")
GENERATE = routes.match("POST", "/api/generate")
GLOBS = ("llama3*",)


def before(raw: bytes) -> list[str] | None:
    """The previous gateway's policy.models_in_body, as it was."""
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    names = [doc.get("model") if doc.get("model") is not None else doc.get("name")]
    found = [n for n in names if isinstance(n, str) and n]
    return found if len(found) == len(names) else None


def after(route: routes.Route) -> Callable[[bytes], object]:
    def check(raw: bytes) -> object:
        doc = body.parse_object(raw)
        policy.models_in_body(route, doc)
        return policy.decide_body(GLOBS, route, doc)

    return check


def bodies() -> dict[str, tuple[bytes, routes.Route]]:
    sentence = "The quick brown fox jumps over the lazy dog; embeddings want text. " * 7
    many = json.dumps({"model": "llama3", "input": [sentence] * 2000, "keep_alive": "5m"})
    one = json.dumps({"model": "llama3", "input": sentence * 2000})
    ids = json.dumps({"model": "llama3", "input": [list(range(i, i + 500)) for i in range(440)]})
    small = json.dumps({"model": "llama3", "prompt": "hi", "stream": False})
    return {
        "embed_1MB_2000_strings": (many.encode(), EMBED),
        "embed_1MB_one_string": (one.encode(), EMBED),
        "embeddings_1MB_token_ids": (ids.encode(), EMBED),
        "generate_small_W1": (small.encode(), GENERATE),
    }


def _time(fn: Callable[[bytes], object], raw: bytes, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn(raw)
    return (time.perf_counter_ns() - t0) / n / 1000


def run(batches: int, scale: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, (raw, route) in bodies().items():
        n = max(1, scale * 1000 // max(1, len(raw) // 1000 + 1))
        new = after(route)
        assert new(raw) == policy.OK and before(raw) == ["llama3"]
        b: list[float] = []
        a: list[float] = []
        for _ in range(batches):
            b.append(_time(before, raw, n))
            a.append(_time(new, raw, n))
        out[label] = {
            "bytes": len(raw),
            "before_us": {"min": round(min(b), 1), "median": round(statistics.median(b), 1)},
            "after_us": {"min": round(min(a), 1), "median": round(statistics.median(a), 1)},
            "ratio_min": round(min(a) / min(b), 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=15)
    ap.add_argument("--scale", type=int, default=20, help="work per batch (bodies x size)")
    a = ap.parse_args()
    print(json.dumps(run(a.batches, a.scale), indent=2))


if __name__ == "__main__":
    main()
