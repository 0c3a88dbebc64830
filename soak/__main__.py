"""make soak: a real daemon and the fake upstream, mixed traffic for SOAK_SECONDS (default ten
minutes), and the daemon's RSS, descriptors and asyncio tasks at the start and the end.

The baseline is taken after a warm-up (first requests fill caches and pools) once the daemon is
idle again; the end likewise. Idle upstream connections close only after their keep-alive, so
the daemon is given up to SETTLE seconds to come back to the baseline's descriptors and tasks.
Passes when RSS grew less than 10 %, the descriptors and the tasks are back to the baseline,
and every answer was the expected one.

    python -m soak [--seconds N] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from soak.measure import Sample, sample
from soak.traffic import Tally, Traffic
from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream

SETTLE = 90.0  # seconds the daemon gets to come back to the baseline once idle


def log(msg: str) -> None:
    print(msg, flush=True)


async def run_traffic(
    url: str, port: int, key: str, tally: Tally, seconds: float, workers: int, seed: int
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    clients = [Traffic(url, port, key, tally, f"127.0.0.{2 + i}") for i in range(workers)]
    await asyncio.gather(*(c.worker(deadline, seed + i) for i, c in enumerate(clients)))


async def settled(daemon: Daemon, baseline: Sample) -> Sample:
    """A sample once nothing is in flight and descriptors and tasks are back to ``baseline``,
    or the last sample after SETTLE seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while True:
        s = await sample(daemon)
        back = s.fds <= baseline.fds and s.tasks <= baseline.tasks
        if (s.in_flight == 0 and back) or loop.time() > deadline:
            return s
        await asyncio.sleep(1)


async def soak(seconds: float, workers: int) -> int:
    upstream = FakeUpstream()
    upstream.chunks, upstream.interval = 20, 0.002
    await upstream.start()
    base = Path(tempfile.mkdtemp(prefix="localai-authd-soak-"))
    daemon = Daemon(upstream.url, base / "state")
    try:
        await daemon.start()
        key = (await daemon.authctl_json("create", "soak"))["key"]
        tally = Tally()
        where = (daemon.url, daemon.port, key, tally)
        cold = await sample(daemon)
        log(f"daemon pid {daemon.proc.pid if daemon.proc else '?'} on {daemon.url}")
        log(f"cold      {cold.line()}")
        warmup = min(30.0, max(5.0, seconds / 20))
        await run_traffic(*where, warmup, workers, seed=1)
        # Idle again: pooled upstream connections close after their keep-alive, so the
        # descriptors come back to what the cold daemon had; the memory stays warm.
        baseline = await settled(daemon, cold)
        log(f"baseline  {baseline.line()}  (after {warmup:.0f} s of warm-up, idle)")

        loop = asyncio.get_running_loop()
        started = loop.time()
        run = asyncio.create_task(run_traffic(*where, seconds, workers, seed=1000))
        while not run.done():
            await asyncio.wait({run}, timeout=min(60.0, max(5.0, seconds / 10)))
            s = await sample(daemon)
            log(f"t={loop.time() - started:5.0f}s {s.line()}  requests {sum(tally.done.values())}")
        await run
        end = await settled(daemon, baseline)
        log(f"end       {end.line()}  (idle)")
    finally:
        await daemon.stop()
        daemon.close()
        await upstream.stop()

    growth = (end.rss_kib - baseline.rss_kib) / baseline.rss_kib * 100
    total = sum(tally.done.values())
    log(f"requests  {total} in {seconds:.0f} s: {dict(sorted(tally.done.items()))}")
    fds, tasks = (baseline.fds, end.fds), (baseline.tasks, end.tasks)
    checks = [
        (f"RSS growth {growth:+.1f} % (< 10 %)", growth < 10),
        (f"descriptors {fds[0]} -> {fds[1]} (back to baseline)", fds[1] <= fds[0]),
        (f"asyncio tasks {tasks[0]} -> {tasks[1]} (back to baseline)", tasks[1] <= tasks[0]),
        (f"unexpected answers: {sum(tally.unexpected.values())}", not tally.unexpected),
    ]
    for text, ok in checks:
        log(f"{'PASS' if ok else 'FAIL'}  {text}")
    for what, n in tally.unexpected.most_common(10):
        log(f"      {n} x {what}")
    return 0 if all(ok for _, ok in checks) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--workers", type=int, default=16)
    a = ap.parse_args()
    return asyncio.run(soak(a.seconds, a.workers))


if __name__ == "__main__":
    sys.exit(main())
