"""The benchmark: direct vs nginx vs localai-authd, interleaved, in one run.

    python -m bench [--quick] [--rounds N] [--seed S] [--out DIR] [--no-pin]

Per round, the cells (workload x concurrency) run in a random order and, within a cell, the
three targets run back to back in a random order, so slow drifts of a shared machine hit
all three alike. Figures are paired per round (target minus direct of the same round), then
the median over rounds is reported with its spread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import loadgen, report
from .targets import PRODUCT_PY, ROOT, Rig, Target, cpu_seconds, loadavg, rss_kb
from .upstream import W1_BODY


@dataclass(frozen=True)
class Plan:
    rounds: int
    w1_conc: tuple[int, ...]
    w1_secs: float
    w5_conc: int
    ttfb_count: int
    w2_conc: tuple[int, ...]
    w2_chunks: int
    w3_conc: tuple[int, ...]
    w3_chunks: int
    w4_counts: tuple[int, ...]
    w4_canaries: int
    w4_canary_chunks: int
    warmup_secs: float


FULL = Plan(
    rounds=3,
    w1_conc=(1, 32, 128),
    w1_secs=5,
    w5_conc=32,
    ttfb_count=200,
    w2_conc=(1, 50, 200, 400),
    w2_chunks=1000,
    w3_conc=(1, 50, 200, 400),
    w3_chunks=1000,
    w4_counts=(500, 1000, 2000),
    w4_canaries=4,
    w4_canary_chunks=300,
    warmup_secs=3,
)
QUICK = Plan(
    rounds=1,
    w1_conc=(1, 32),
    w1_secs=3,
    w5_conc=32,
    ttfb_count=50,
    w2_conc=(1, 200),
    w2_chunks=200,
    w3_conc=(200,),
    w3_chunks=200,
    w4_counts=(500,),
    w4_canaries=4,
    w4_canary_chunks=100,
    warmup_secs=1,
)
W2_PACE_US = 10_000
W3_PACE_US = 5_000
W4_PACE_US = 10_000


@dataclass(frozen=True)
class Cell:
    workload: str  # W1 W5 TTFB W2 W3 W4
    param: int  # concurrency / open streams

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.param}"


def cells(plan: Plan) -> list[Cell]:
    out = [Cell("W1", c) for c in plan.w1_conc]
    out.append(Cell("W5", plan.w5_conc))
    out.append(Cell("TTFB", 1))
    out += [Cell("W2", c) for c in plan.w2_conc]
    out += [Cell("W3", c) for c in plan.w3_conc]
    out += [Cell("W4", n) for n in plan.w4_counts]
    return out


# ---- helpers ---------------------------------------------------------------------------------

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def wrong_secret(key: str) -> str:
    """A key with the same key id and a valid checksum but another secret: a bad key that
    passes every cheap check and costs the gateway its full verification."""
    head = key[: len("sk_local_") + 12 + 1]
    body = _b62(int.from_bytes(os.urandom(32)) % 62**43, 43)
    text = head + body
    return text + _b62(zlib.crc32(text.encode()), 6)


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


async def upstream_stats(rig: Rig, reset: bool = False) -> dict[str, Any]:
    q = "?reset=1" if reset else ""
    req = f"GET /_bench/stats{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    _, body = await loadgen.simple_request(rig.upstream_port, req)
    doc: dict[str, Any] = json.loads(body)
    return doc


async def upstream_call(rig: Rig, method: str, path: str) -> dict[str, Any]:
    req = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    _, body = await loadgen.simple_request(rig.upstream_port, req, timeout=60)
    doc: dict[str, Any] = json.loads(body)
    return doc


class Meter:
    """CPU of the target and of the rig (upstream + this process + children) over a cell."""

    def __init__(self, rig: Rig, target: Target) -> None:
        self.rig = rig
        self.target = target

    def __enter__(self) -> Meter:
        self.t0 = time.monotonic()
        self.cpu0 = cpu_seconds(self.target.pids())
        up = self.rig.procs[0].pid
        self.up0 = cpu_seconds([up])
        self.self0 = _self_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.cpu = cpu_seconds(self.target.pids()) - self.cpu0
        self.up_cpu = cpu_seconds([self.rig.procs[0].pid]) - self.up0
        self.self_cpu = _self_cpu() - self.self0

    def fields(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall, 3),
            "target_cpu_s": round(self.cpu, 3),
            "target_core_busy": round(self.cpu / self.wall, 3) if self.wall else 0.0,
            # core 1: upstream + load generator (this process and wrk)
            "rig_core_busy": round((self.up_cpu + self.self_cpu) / self.wall, 3)
            if self.wall
            else 0.0,
        }


def _self_cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ---- the workloads -----------------------------------------------------------------------


async def run_w1(rig: Rig, t: Target, conns: int, secs: float, bad_every: int) -> dict[str, Any]:
    before = await upstream_stats(rig)
    with Meter(rig, t) as m:
        w = await asyncio.to_thread(
            loadgen.run_wrk,
            t.port,
            conns,
            secs,
            rig.key,
            rig.bad_key,
            bad_every,
            rig.rig_cpu,
        )
    after = await upstream_stats(rig)
    n = w["requests"]
    return {
        "requests": n,
        "rps": round(n / (w["duration_us"] / 1e6), 1),
        "p50_us": w["p50"],
        "p90_us": w["p90"],
        "p99_us": w["p99"],
        "p999_us": w["p999"],
        "errors": w["connect"] + w["read"] + w["write"] + w["timeout"],
        "non2xx": w["status"],
        "cpu_us_per_req": round(m.cpu * 1e6 / n, 1) if n and t.proc else None,
        "bad_reached_upstream": after["bad_seen"] - before["bad_seen"],
        "creds_reached_upstream": after["cred_seen"] - before["cred_seen"],
        **m.fields(),
    }


def _stream_metrics(
    results: list[loadgen.StreamResult], pace_us: int, digests: dict[str, str]
) -> dict[str, Any]:
    ok = [r for r in results if not r.error]
    gaps = np.concatenate([r.gaps_ns for r in ok]) / 1000 if ok else np.empty(0)
    transit = np.concatenate([r.transit_ns for r in ok]) / 1000 if ok else np.empty(0)
    ttfb = np.array([r.ttfb_ns for r in ok if r.ttfb_ns >= 0]) / 1000
    msgs = sum(r.messages for r in results)
    expected = sum(r.expected for r in results)
    mismatched = sum(1 for r in results if digests.get(r.sid) != r.sha256)
    delivering = sum(r.delivering_reads for r in ok)
    return {
        "streams": len(results),
        "stream_errors": len(results) - len(ok),
        "error_sample": next((r.error for r in results if r.error), ""),
        "messages": msgs,
        "lost": expected - msgs,
        "digest_mismatch": mismatched,
        "ttfb_p50_us": round(pct(ttfb, 50), 1),
        "ttfb_p99_us": round(pct(ttfb, 99), 1),
        "gap_mean_us": round(float(np.mean(gaps)), 1) if len(gaps) else None,
        "gap_p50_us": round(pct(gaps, 50), 1),
        "gap_p99_us": round(pct(gaps, 99), 1),
        "gap_p999_us": round(pct(gaps, 99.9), 1),
        "short_gaps": round(float(np.mean(gaps < pace_us / 2)), 5) if len(gaps) else None,
        "transit_p50_us": round(pct(transit, 50), 1),
        "transit_p99_us": round(pct(transit, 99), 1),
        "transit_p999_us": round(pct(transit, 99.9), 1),
        "bunching": round(delivering / sum(r.messages for r in ok), 4) if ok else None,
    }


async def run_streams(
    rig: Rig, t: Target, n: int, mode: str, chunks: int, pace_us: int, cell_id: str
) -> dict[str, Any]:
    before = await upstream_stats(rig, reset=True)
    timeout = chunks * pace_us / 1e6 * 1.5 + 30
    with Meter(rig, t) as m:
        res = await loadgen.run_streams(
            t.port,
            rig.key,
            n=n,
            mode=mode,
            chunks=chunks,
            pace_us=pace_us,
            cell=cell_id,
            timeout=timeout,
        )
    after = await upstream_stats(rig)
    digests = await upstream_call(rig, "GET", f"/_bench/digests?prefix={cell_id}-")
    out = _stream_metrics(res, pace_us, digests)
    out["chunks_per_s"] = round(out["messages"] / m.wall, 1)
    out["cpu_us_per_chunk"] = (
        round(m.cpu * 1e6 / out["messages"], 2) if out["messages"] and t.proc else None
    )
    out["upstream_tick_late_p99_us"] = after["tick_late_p99_us"]
    out["creds_reached_upstream"] = after["cred_seen"] - before["cred_seen"]
    out.update(m.fields())
    return out


async def run_ttfb(rig: Rig, t: Target, count: int, cell_id: str) -> dict[str, Any]:
    with Meter(rig, t) as m:
        res = await loadgen.run_sequential(
            t.port, rig.key, count=count, chunks=2, pace_us=W2_PACE_US, cell=cell_id, timeout=60
        )
    digests = await upstream_call(rig, "GET", f"/_bench/digests?prefix={cell_id}-")
    out = _stream_metrics(res, W2_PACE_US, digests)
    out["cpu_us_per_stream"] = round(m.cpu * 1e6 / len(res), 1) if res and t.proc else None
    out.update(m.fields())
    return out


async def run_w4(rig: Rig, t: Target, n: int, plan: Plan, cell_id: str) -> dict[str, Any]:
    """``n`` streams held before their first byte, canaries streaming meanwhile."""
    if t.proc is not None:
        t = await asyncio.to_thread(rig.restart, t.name)  # a clean heap for the memory figure
        await _warm(rig, t, 1.0)
    await asyncio.sleep(0.5)
    rss0 = rss_kb(t.worker_pids()) if t.proc else 0
    idle = loadgen.IdleStreams()
    out: dict[str, Any] = {}
    try:
        t_open = time.monotonic()
        await idle.open(t.port, rig.key, n, cell_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (await upstream_stats(rig))["idle_pending"] >= n:
                break
            await asyncio.sleep(0.1)
        out["open_s"] = round(time.monotonic() - t_open, 2)
        await asyncio.sleep(1.0)
        rss1 = rss_kb(t.worker_pids()) if t.proc else 0
        out["idle_pending"] = (await upstream_stats(rig))["idle_pending"]
        out["mem_kb_per_stream"] = round((rss1 - rss0) / n, 2) if t.proc else None
        out["rss_kb_before"], out["rss_kb_open"] = rss0, rss1
        canary = await run_streams(
            rig, t, plan.w4_canaries, "ndjson", plan.w4_canary_chunks, W4_PACE_US, cell_id + "c"
        )
        out.update({f"canary_{k}": v for k, v in canary.items()})
    finally:
        released = await upstream_call(rig, "POST", "/_bench/release?chunks=2")
        res = await idle.finish(timeout=60)
    digests = await upstream_call(rig, "GET", f"/_bench/digests?prefix={cell_id}-idle-")
    held = _stream_metrics(res, W4_PACE_US, digests)
    out["released"] = released["released"]
    out["lost"] = held["lost"]
    out["stream_errors"] = held["stream_errors"]
    out["error_sample"] = held["error_sample"]
    out["digest_mismatch"] = held["digest_mismatch"]
    out["lost_total"] = held["lost"] + out.get("canary_lost", 0)
    return out


async def _warm(rig: Rig, t: Target, secs: float) -> None:
    await asyncio.to_thread(loadgen.run_wrk, t.port, 8, secs, rig.key, "x", 0, rig.rig_cpu)
    await loadgen.run_streams(
        t.port,
        rig.key,
        n=20,
        mode="ndjson",
        chunks=20,
        pace_us=W2_PACE_US,
        cell="warm",
        timeout=30,
    )
    await upstream_call(rig, "GET", "/_bench/digests?prefix=warm-")


async def correctness(rig: Rig, t: Target) -> dict[str, Any]:
    """Bodies byte-identical; bad, garbage and missing keys refused and never forwarded."""
    before = await upstream_stats(rig)
    identical = 0
    for _ in range(20):
        status, body = await loadgen.simple_request(t.port, loadgen.w1_request(rig.key))
        identical += status == 200 and body == W1_BODY
    refused = 0
    bad_keys = [rig.bad_key, "sk_local_garbage", "", rig.key[:-1] + "x"]
    for i in range(20):
        status, _ = await loadgen.simple_request(
            t.port, loadgen.w1_request(bad_keys[i % len(bad_keys)], bad=True)
        )
        refused += status in (400, 401)  # 400: a credential header that cannot be read
    after = await upstream_stats(rig)
    return {
        "w1_identical": f"{identical}/20",
        "bad_refused": f"{refused}/20",
        "bad_reached_upstream": after["bad_seen"] - before["bad_seen"],
        "creds_reached_upstream": after["cred_seen"] - before["cred_seen"],
    }


async def run_cell(rig: Rig, cell: Cell, t: Target, plan: Plan, tag: str) -> dict[str, Any]:
    w, p = cell.workload, cell.param
    if w == "W1":
        return await run_w1(rig, t, p, plan.w1_secs, 0)
    if w == "W5":
        return await run_w1(rig, t, p, plan.w1_secs, 10)
    if w == "TTFB":
        return await run_ttfb(rig, t, plan.ttfb_count, tag)
    if w == "W2":
        return await run_streams(rig, t, p, "ndjson", plan.w2_chunks, W2_PACE_US, tag)
    if w == "W3":
        return await run_streams(rig, t, p, "sse", plan.w3_chunks, W3_PACE_US, tag)
    return await run_w4(rig, t, p, plan, tag)


def rig_limited(cell: Cell, direct: dict[str, Any]) -> str:
    """Why the direct path itself missed the pacing (then the cell is not scored), or ""."""
    if cell.workload in ("W2", "W3", "W4"):
        pace = {"W2": W2_PACE_US, "W3": W3_PACE_US, "W4": W4_PACE_US}[cell.workload]
        pre = "canary_" if cell.workload == "W4" else ""
        if direct.get(pre + "lost", 0) or direct.get(pre + "stream_errors", 0):
            return "direct lost chunks"
        p99 = direct.get(pre + "gap_p99_us")
        if p99 is not None and p99 > 2 * pace:
            return f"direct gap p99 {p99 / 1000:.1f} ms at {pace / 1000:g} ms pacing"
        mean = direct.get(pre + "gap_mean_us")
        if mean is not None and mean > pace * 1.05:
            return f"direct mean gap {mean / 1000:.2f} ms at {pace / 1000:g} ms pacing"
    return ""


# ---- the run -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def cmd(*a: str) -> str:
        try:
            r = subprocess.run(a, capture_output=True, text=True, timeout=20)
            return (r.stdout or r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import uvloop

    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "product_python": cmd(
            str(PRODUCT_PY),
            "-c",
            "import sys, aiohttp, localai_authd; print(sys.version.split()[0], "
            "'aiohttp', aiohttp.__version__, 'localai-authd', localai_authd.__version__)",
        ),
        "rig_python": f"{sys.version.split()[0]} uvloop {uvloop.__version__}",
        "nginx": cmd("nginx", "-v"),
        "wrk": cmd("wrk", "-v").splitlines()[0] if shutil.which("wrk") else "?",
        "git": cmd("git", "-C", str(ROOT), "describe", "--always", "--dirty"),
    }


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "wrk", "taskset") if shutil.which(t) is None]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "nginx", "wrk"],
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
        return
    raise SystemExit(f"bench: needs {', '.join(missing)} (apt-get install -y nginx wrk)")


async def bench(
    rig: Rig, plan: Plan, seed: int, log: Any, only: set[str] | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    names = list(rig.targets)
    records: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    auth_rounds: list[dict[str, Any]] = []
    for name in names:
        log(f"warm-up {name}")
        await _warm(rig, rig.targets[name], plan.warmup_secs)
    for rnd in range(plan.rounds):
        order = [c for c in cells(plan) if only is None or c.label in only]
        rng.shuffle(order)
        for name in rng.sample(names, len(names)):
            checks.append(
                {"round": rnd, "target": name, **await correctness(rig, rig.targets[name])}
            )
        for cell in order:
            per: dict[str, dict[str, Any]] = {}
            for ti, name in enumerate(rng.sample(names, len(names))):
                tag = f"r{rnd}{cell.workload}{cell.param}t{ti}"
                t0 = time.time()
                m = await run_cell(rig, cell, rig.targets[name], plan, tag)
                per[name] = m
                records.append(
                    {
                        "round": rnd,
                        "workload": cell.workload,
                        "param": cell.param,
                        "target": name,
                        "started": round(t0, 3),
                        "loadavg": loadavg()[0],
                        "metrics": m,
                    }
                )
                where = f"round {rnd + 1}/{plan.rounds} {cell.label:9} {name:14}"
                log(f"{where} {report.brief(cell.workload, m)}")
            why = rig_limited(cell, per["direct"])
            for r in records[-len(names) :]:
                r["rig_limited"] = why
            if why:
                log(f"  {cell.label}: rig-limited ({why})")
        out = subprocess.run(
            [str(PRODUCT_PY), str(ROOT / "bench" / "authbench.py"), "time"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        auth_rounds.append(json.loads(out.stdout))
    return {"records": records, "correctness": checks, "auth": auth_rounds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (< 2 minutes)")
    ap.add_argument("--rounds", type=int, help="rounds after the warm-up")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random order")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--no-pin", action="store_true", help="don't pin processes to cores")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a plan field, e.g. w1_secs=10 or w2_conc=50,200",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (daemon logs)")
    ap.add_argument("--only", help="comma-separated cells to run, e.g. W1/1,W1/32,W2/200")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=SPEC",
        help="an extra localai-authd target for A/B runs; SPEC is comma-separated: a source "
        "dir (another checkout's root), uvloop, audit-log-off",
    )
    ap.add_argument(
        "--publish",
        action="store_true",
        help="copy chart.png and results.md to bench/ (what bench/README.md embeds)",
    )
    a = ap.parse_args(argv)
    plan = QUICK if a.quick else FULL
    fields = asdict(plan)
    if a.rounds:
        fields["rounds"] = a.rounds
    for item in a.set:
        k, _, v = item.partition("=")
        if k not in fields:
            raise SystemExit(f"bench: --set {k}: no such plan field ({', '.join(fields)})")
        old = fields[k]
        fields[k] = tuple(int(x) for x in v.split(",")) if isinstance(old, tuple) else type(old)(v)
    plan = Plan(**fields)
    seed = a.seed if a.seed is not None else int(time.time())
    pin = not a.no_pin and (os.cpu_count() or 1) >= 2
    ensure_tools()
    if not PRODUCT_PY.exists():
        raise SystemExit("bench: the product's venv is missing; run `make venv` first")
    if pin:
        os.sched_setaffinity(0, {1})  # the harness is the stream load generator: core 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = a.out / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:7.1f}s] {msg}", flush=True)

    load_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="lab-"))
    rig = Rig(tmp, pin=pin)
    try:
        rig.start_upstream()
        rig.seed_key()
        rig.bad_key = wrong_secret(rig.key)
        rig.start_nginx()
        rig.start_authd()
        for v in a.variant:
            label, _, spec = v.partition("=")
            rig.start_authd(name=label, variant=spec)
        log(f"rig up in {tmp} (pinned: {pin}); plan {'quick' if a.quick else 'full'}, seed {seed}")
        import uvloop

        only = set(a.only.split(",")) if a.only else None
        data = uvloop.run(bench(rig, plan, seed, log, only))
    finally:
        rig.stop_all()
        if "data" not in locals():
            shutil.rmtree(tmp, ignore_errors=True)
    data["meta"] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "mode": "quick" if a.quick else "full",
        "seed": seed,
        "pinned": pin,
        "plan": asdict(plan),
        "paces_us": {"W2": W2_PACE_US, "W3": W3_PACE_US, "W4": W4_PACE_US},
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "machine": machine(),
        "settings": {
            "localai-authd": "real daemon (.venv/bin/localai-authd), production config: audit "
            "to a file and to the log (stderr to a file), log level info; pinned to core 0",
            "nginx": "worker_processes 1 pinned to core 0; static bearer check (if "
            "$http_authorization); proxy_http_version 1.1; proxy_buffering off; keepalive 1024 "
            "upstream pool; access_log off",
            "direct": "the client talks to the upstream itself",
            "rig": "core 1: the upstream (raw asyncio protocol, stdlib loop, one ticker thread "
            "per pacing), wrk -t1 for W1/W5, the stream client (raw asyncio protocol on uvloop, "
            "each read stamped with CLOCK_MONOTONIC on arrival)",
            "cpu": "CPU time of the target's processes from /proc/PID/task/*/schedstat "
            "(user + system, ns) over each cell, divided by requests or chunks delivered",
            "memory": "VmRSS of the target's (worker) process before and after opening the "
            "idle streams, in a freshly started process, divided by the number of streams",
        },
    }
    (out_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    summary = report.summarize(data)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    md = report.markdown(data, summary)
    (out_dir / "results.md").write_text(md)
    report.chart(summary, out_dir / "chart.png")
    if a.publish:
        shutil.copy(out_dir / "chart.png", ROOT / "bench" / "chart.png")
        shutil.copy(out_dir / "results.md", ROOT / "bench" / "results.md")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(md)
    log(f"wrote {out_dir}")
    return 0
