"""Profile localai-authd under one bench workload with py-spy (sampling).

    python -m bench.profile w2 --conc 200 [--secs 10] [--py-spy PATH] [--top 25]
    python -m bench.profile w1 --conc 32 [--variant metrics]

Starts the same rig as the benchmark (lean upstream on core 1, the daemon in its production
configuration on core 0), runs the workload while py-spy samples the daemon from core 1,
and prints the top functions by own time and by inclusive time. The raw collapsed stacks
(flamegraph input) are kept in bench/out/profile-<workload>-<stamp>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import loadgen
from .run import W2_PACE_US, W3_PACE_US, wrong_secret
from .targets import ROOT, Rig, cpu_seconds


def top(raw: Path, n: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        # "fn (path/file.py:123)" → "fn (path/file.py)": one entry per function
        frames = [f.rpartition(":")[0] + ")" if f.endswith(")") else f for f in stack.split(";")]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames or frames[0].startswith("Thread._bootstrap"):
            continue  # idle worker threads (the keyring executor): not the event loop
        total += c
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    out = [f"{total} samples of the event loop thread", "", "own time:"]
    out += [f"  {v * 100 / total:5.1f}%  {k}" for k, v in own.most_common(n)]
    out += ["", "inclusive:"]
    out += [f"  {v * 100 / total:5.1f}%  {k}" for k, v in incl.most_common(n)]
    return "\n".join(out)


async def load(rig: Rig, port: int, workload: str, conc: int, secs: float) -> str:
    if workload in ("w1", "w5"):
        w = await asyncio.to_thread(
            loadgen.run_wrk, port, conc, secs, rig.key, rig.bad_key, 10 if workload == "w5" else 0
        )
        return f"{w['requests'] / (w['duration_us'] / 1e6):,.0f} req/s, p50 {w['p50']} µs"
    if workload == "ttfb":
        res = await loadgen.run_sequential(
            port,
            rig.key,
            count=int(secs * 150),
            chunks=2,
            pace_us=W2_PACE_US,
            cell="p",
            timeout=secs + 30,
        )
        return f"{len(res)} short streams"
    mode, pace = ("sse", W3_PACE_US) if workload == "w3" else ("ndjson", W2_PACE_US)
    res = await loadgen.run_streams(
        port,
        rig.key,
        n=conc,
        mode=mode,
        chunks=int(secs * 1e6 / pace),
        pace_us=pace,
        cell="p",
        timeout=secs * 2 + 30,
    )
    return f"{sum(r.messages for r in res)} chunks, {sum(1 for r in res if r.error)} errors"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["w1", "w5", "w2", "w3", "ttfb"])
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--variant", default="", help="as the bench's --variant SPEC (e.g. metrics, or a checkout)"
    )
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = Path(tempfile.mkdtemp(prefix="lab-prof-"))
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"profile-{a.workload}{a.conc}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    rig = Rig(tmp)
    try:
        rig.start_upstream()
        rig.seed_key()
        rig.bad_key = wrong_secret(rig.key)
        t = rig.start_authd(variant=a.variant)
        assert t.proc is not None
        import uvloop

        uvloop.run(load(rig, t.port, "w1", 8, 2))  # warm
        spy = subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                a.py_spy,
                "record",
                "--pid",
                str(t.proc.pid),
                "--rate",
                str(a.rate),
                "--duration",
                str(int(a.secs)),
                "--format",
                "raw",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu0 = cpu_seconds([t.proc.pid])
        t0 = time.monotonic()
        what = uvloop.run(load(rig, t.port, a.workload, a.conc, a.secs))
        busy = (cpu_seconds([t.proc.pid]) - cpu0) / (time.monotonic() - t0)
        spy.wait(timeout=a.secs + 60)
        print(f"{a.workload} conc {a.conc}: {what}; daemon core busy {busy:.2f}")
        print(top(raw, a.top))
        print(f"\nraw stacks: {raw}")
    finally:
        rig.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
