"""From raw per-round records to the summary, the Markdown table and the chart."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# Per workload: metrics reported as they are, and metrics reported as "added over direct"
# (target minus direct of the same round).
ABS = {
    "W1": ("rps", "cpu_us_per_req", "p50_us", "p99_us", "p999_us", "non2xx", "errors"),
    "W5": (
        "rps",
        "cpu_us_per_req",
        "p50_us",
        "p99_us",
        "p999_us",
        "non2xx",
        "bad_reached_upstream",
        "errors",
    ),
    "TTFB": ("ttfb_p50_us", "cpu_us_per_stream", "lost", "digest_mismatch"),
    "W2": (
        "chunks_per_s",
        "cpu_us_per_chunk",
        "bunching",
        "short_gaps",
        "lost",
        "stream_errors",
        "digest_mismatch",
        "gap_p99_us",
        "target_core_busy",
        "rig_core_busy",
    ),
    "W4": ("mem_kb_per_stream", "lost_total", "stream_errors", "digest_mismatch", "open_s"),
}
ABS["W3"] = ABS["W2"]
ADDED = {
    "W1": ("p50_us", "p99_us", "p999_us"),
    "W5": ("p50_us", "p99_us", "p999_us"),
    "TTFB": ("ttfb_p50_us", "ttfb_p99_us"),
    "W2": (
        "gap_p50_us",
        "gap_p99_us",
        "gap_p999_us",
        "transit_p50_us",
        "transit_p99_us",
        "ttfb_p50_us",
    ),
    "W4": ("canary_gap_p99_us", "canary_transit_p99_us"),
}
ADDED["W3"] = ADDED["W2"]
ORDER = ("W1", "W5", "TTFB", "W2", "W3", "W4")


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, str):
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _stat(vals: list[float]) -> dict[str, float] | None:
    if not vals:
        return None
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    by: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    limited: dict[str, set[int]] = defaultdict(set)
    for r in data["records"]:
        by[(r["workload"], r["param"], r["round"])][r["target"]] = r["metrics"]
        if r.get("rig_limited"):
            limited[f"{r['workload']}/{r['param']}"].add(r["round"])
    acc: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    cells_seen: dict[str, tuple[str, int]] = {}
    for (w, p, rnd), per in by.items():
        label = f"{w}/{p}"
        cells_seen[label] = (w, p)
        if rnd in limited[label]:
            continue
        direct = per.get("direct", {})
        for target, m in per.items():
            for k in ABS[w]:
                v = _num(m.get(k))
                if v is not None:
                    acc[label][target][k].append(v)
            for k in ADDED[w]:
                v, d = _num(m.get(k)), _num(direct.get(k))
                if v is not None and d is not None:
                    acc[label][target]["added_" + k].append(v - d)
    cells: dict[str, Any] = {}
    for label, (w, p) in sorted(cells_seen.items(), key=lambda x: (ORDER.index(x[1][0]), x[1][1])):
        cells[label] = {
            "workload": w,
            "param": p,
            "rounds_rig_limited": len(limited[label]),
            "targets": {
                t: {k: _stat(v) for k, v in metrics.items()} for t, metrics in acc[label].items()
            },
        }
    summary = {"cells": cells, "auth": _auth(data.get("auth", []))}
    summary["targets"] = _issue_targets(summary)
    return summary


def _auth(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in rounds[0] if rounds else ():
        for what in ("verify", "extract_and_verify"):
            vals = [r[kind][what]["median_us"] for r in rounds]
            out.setdefault(kind, {})[what] = _stat(vals)
    return out


def _get(s: dict[str, Any], label: str, target: str, metric: str) -> float | None:
    st = s["cells"].get(label, {}).get("targets", {}).get(target, {}).get(metric)
    return None if st is None else float(st["median"])


def _issue_targets(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Where localai-authd stands against each of its targets."""
    g = "localai-authd"
    rows: list[dict[str, Any]] = []

    def add(what: str, value: float | None, limit: float, unit: str, le: bool = True) -> None:
        met = None if value is None else (value <= limit if le else value >= limit)
        shown = "n/a" if value is None else f"{value:,.1f} {unit}".strip()
        rows.append({"target": what, "measured": shown, "met": met})

    add(
        "W1 added latency p50 ≤ 0.3 ms (1 at a time)", _get(s, "W1/1", g, "added_p50_us"), 300, "µs"
    )
    add("W1 added latency p99 ≤ 1 ms (1 at a time)", _get(s, "W1/1", g, "added_p99_us"), 1000, "µs")
    w1 = [c for c in s["cells"] if c.startswith("W1/")]
    cpu = [v for c in w1 if (v := _get(s, c, g, "cpu_us_per_req")) is not None]
    add("W1 CPU ≤ 200 µs per request (worst concurrency)", max(cpu) if cpu else None, 200, "µs")
    add(
        "Added TTFB, one stream, p50 ≤ 0.5 ms", _get(s, "TTFB/1", g, "added_ttfb_p50_us"), 500, "µs"
    )
    add(
        "Added gap at 200 streams (W2) p50 ≤ 50 µs",
        _get(s, "W2/200", g, "added_gap_p50_us"),
        50,
        "µs",
    )
    add(
        "Added gap at 200 streams (W2) p99 ≤ 1 ms",
        _get(s, "W2/200", g, "added_gap_p99_us"),
        1000,
        "µs",
    )
    b = _get(s, "W2/200", g, "bunching")
    rows.append(
        {
            "target": "Bunching factor 1.00 at 200 streams (W2)",
            "measured": "n/a" if b is None else f"{b:.3f}",
            "met": None if b is None else round(b, 2) == 1.0,
        }
    )
    best = None
    for label, c in s["cells"].items():
        if c["workload"] not in ("W2", "W3"):
            continue
        rate = _get(s, label, g, "chunks_per_s")
        p99 = _get(s, label, g, "added_gap_p99_us")
        lost = _get(s, label, g, "lost")
        if rate is not None and p99 is not None and p99 <= 2000 and not lost:
            best = max(best or 0.0, rate)
    add(
        "≥ 20,000 chunks/s on one core with added gap p99 ≤ 2 ms", best, 20000, "chunks/s", le=False
    )
    w4 = sorted((c["param"], label) for label, c in s["cells"].items() if c["workload"] == "W4")
    if w4:
        n, label = w4[-1]
        mem = _get(s, label, g, "mem_kb_per_stream")
        lost = _get(s, label, g, "lost_total")
        shown = "n/a"
        if mem is not None and lost is not None:
            shown = f"{n} streams, {mem:.1f} KB each, {lost:.0f} lost"
        met = None  # fewer than 2,000 tested (quick mode): no verdict
        if mem is not None and n >= 2000:
            met = lost == 0 and mem <= 32
        rows.append(
            {"target": "≥ 2,000 idle open streams at ≤ 32 KB each", "measured": shown, "met": met}
        )
    a = s.get("auth", {})
    if a:
        v = a["good"]["verify"]["median"]
        full = a["good"]["extract_and_verify"]["median"]
        add("Auth check ≤ 5 µs (KeyStore.verify)", v, 5, "µs")
        add("Auth check ≤ 5 µs (header parse + verify)", full, 5, "µs")
        bad = a["wrong_secret_known_kid"]["verify"]["median"]
        unk = a["unknown_kid"]["verify"]["median"]
        worst = max(abs(bad - v), abs(unk - v)) / v * 100
        rows.append(
            {
                "target": "A bad key costs the same as a good one (verify)",
                "measured": f"good {v:.2f} µs, wrong secret {bad:.2f} µs, unknown id {unk:.2f} µs",
                "met": worst <= 10,
            }
        )
    return rows


# ---- text ------------------------------------------------------------------------------------


def _fmt(st: dict[str, float] | None, digits: int = 0, spread: bool = True) -> str:
    if st is None:
        return "-"
    f = f"{{:,.{digits}f}}"
    med = f.format(st["median"])
    if not spread or st["n"] < 2:
        return med
    return f"{med} [{f.format(st['min'])}…{f.format(st['max'])}]"


def _ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
    if a is None or b is None or b["median"] <= 0:
        return "-"
    return f"{a['median'] / b['median']:.1f}x"


def _ordered(targets: Any) -> list[str]:
    """direct, nginx, localai-authd, then any A/B variants in order of appearance."""
    seen = list(dict.fromkeys(targets))
    first = [t for t in ("direct", "nginx", "localai-authd") if t in seen]
    return first + [t for t in seen if t not in first]


def brief(workload: str, m: dict[str, Any]) -> str:
    if workload in ("W1", "W5"):
        return (
            f"rps {m['rps']:>8,.0f}  p50 {m['p50_us']:>6} µs  p99 {m['p99_us']:>6} µs  "
            f"cpu/req {m['cpu_us_per_req']} µs  non2xx {m['non2xx']}"
        )
    if workload == "TTFB":
        return f"ttfb p50 {m['ttfb_p50_us']} µs  p99 {m['ttfb_p99_us']} µs  lost {m['lost']}"
    if workload == "W4":
        return (
            f"mem/stream {m.get('mem_kb_per_stream')} KB  lost {m.get('lost_total')}  "
            f"canary gap p99 {m.get('canary_gap_p99_us')} µs  errors {m.get('stream_errors')}"
        )
    return (
        f"{m['chunks_per_s']:>8,.0f} ch/s  gap p50 {m['gap_p50_us']} p99 {m['gap_p99_us']} "
        f"p99.9 {m['gap_p999_us']} µs  transit p99 {m['transit_p99_us']} µs  "
        f"bunch {m['bunching']}  lost {m['lost']}  cpu/ch {m['cpu_us_per_chunk']} µs  "
        f"core0 {m['target_core_busy']} core1 {m['rig_core_busy']}"
    )


def markdown(data: dict[str, Any], s: dict[str, Any]) -> str:
    meta = data["meta"]
    mach = meta["machine"]
    L: list[str] = []
    L.append(f"# localai-authd benchmark — {meta['started']} ({meta['mode']})\n")
    L.append(
        f"{mach['cpu']}, {mach['cpus']} CPUs, {mach['os']}, kernel {mach['kernel']}; product "
        f"{mach['product_python']}; {mach['nginx']}; {mach['wrk']}; rig Python "
        f"{mach['rig_python']}; commit {mach['git']}. {meta['plan']['rounds']} round(s), seed "
        f"{meta['seed']}, {meta['duration_s']:.0f} s; load average "
        f"{'/'.join(f'{x:.2f}' for x in meta['loadavg_start'])} at start, "
        f"{'/'.join(f'{x:.2f}' for x in meta['loadavg_end'])} at end.\n"
    )
    L.append(
        "Figures are medians over rounds [min…max]; *added* = target minus direct in the same "
        "round. Cells where the direct path itself missed its pacing are *rig-limited* and not "
        "scored.\n"
    )
    L.append("## Against the targets\n")
    L.append("| target | localai-authd | met |\n|---|---|---|")
    for r in s["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        L.append(f"| {r['target']} | {r['measured']} | {met} |")
    L.append("")
    cells = s["cells"]
    names = _ordered(r["target"] for r in data["records"])
    proxies = [t for t in names if t != "direct"]

    def row(label: str, t: str, k: str, d: int = 0) -> str:
        return _fmt(cells[label]["targets"].get(t, {}).get(k), d)

    def lim(label: str) -> str:
        n = cells[label]["rounds_rig_limited"]
        return f" (rig-limited in {n} round(s))" if n else ""

    L.append("## W1 / W5: small non-streaming requests (wrk, keep-alive)\n")
    L.append(
        "| cell | target | p50 / p99 / p99.9 µs (direct: absolute; others: added) | req/s | "
        "CPU µs/req | CPU vs nginx |"
    )
    L.append("|---|---|---|---|---|---|")
    for label, c in cells.items():
        if c["workload"] not in ("W1", "W5"):
            continue
        tg = c["targets"]
        name = f"{label} (conc. {c['param']}{', 10% bad keys' if c['workload'] == 'W5' else ''})"
        for t in names:
            pre = "" if t == "direct" else "added_"
            lat = " / ".join(row(label, t, f"{pre}{p}_us") for p in ("p50", "p99", "p999"))
            cpu = tg.get(t, {}).get("cpu_us_per_req")
            vs = _ratio(cpu, tg.get("nginx", {}).get("cpu_us_per_req")) if t != "nginx" else ""
            L.append(
                f"| {name if t == 'direct' else ''} | {t} | {lat} | {row(label, t, 'rps')} | "
                f"{_fmt(cpu)} | {vs if t != 'direct' else ''} |"
            )
    L.append("")
    if "TTFB/1" in cells:
        L.append("## Time to first byte, one stream at a time (first body byte)\n")
        L.append("| | added p50 µs | added p99 µs | CPU µs per short stream |\n|---|---|---|---|")
        for t in proxies:
            L.append(
                f"| {t} | {row('TTFB/1', t, 'added_ttfb_p50_us')} | "
                f"{row('TTFB/1', t, 'added_ttfb_p99_us')} | "
                f"{row('TTFB/1', t, 'cpu_us_per_stream')} |"
            )
        L.append("")
    L.append("## W2 (Ollama NDJSON, 10 ms) / W3 (OpenAI SSE, 5 ms): 1000-chunk streams\n")
    L.append(
        "| cell | target | added gap p50 / p99 / p99.9 µs | added transit p50 / p99 µs | "
        "bunching | short gaps | chunks/s | CPU µs/chunk | lost |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|")
    for label, c in cells.items():
        if c["workload"] not in ("W2", "W3"):
            continue
        if not c["targets"]:
            L.append(f"| {label} | all | rig-limited in every round | | | | | | |")
            continue
        for t in names:
            if t == "direct":
                gaps = f"abs p99 {row(label, t, 'gap_p99_us')}"
                transit = "-"
            else:
                gaps = " / ".join(
                    row(label, t, f"added_gap_{p}_us") for p in ("p50", "p99", "p999")
                )
                transit = " / ".join(row(label, t, f"added_transit_{p}_us") for p in ("p50", "p99"))
            L.append(
                f"| {label}{lim(label) if t == 'direct' else ''} | {t} | {gaps} | {transit} | "
                f"{row(label, t, 'bunching', 3)} | {row(label, t, 'short_gaps', 4)} | "
                f"{row(label, t, 'chunks_per_s')} | {row(label, t, 'cpu_us_per_chunk', 1)} | "
                f"{row(label, t, 'lost')} |"
            )
    L.append("")
    w4 = [lb for lb, c in cells.items() if c["workload"] == "W4"]
    if w4:
        L.append("## W4: idle streams (first byte late) + 4 active canaries\n")
        L.append(
            "| cell | target | memory KB per open stream | canary added gap p99 µs | lost | "
            "errors |\n|---|---|---|---|---|---|"
        )
        for label in w4:
            for t in names:
                L.append(
                    f"| {label}{lim(label) if t == 'direct' else ''} | {t} | "
                    f"{row(label, t, 'mem_kb_per_stream', 1)} | "
                    f"{row(label, t, 'added_canary_gap_p99_us') if t != 'direct' else '-'} | "
                    f"{row(label, t, 'lost_total')} | {row(label, t, 'stream_errors')} |"
                )
        L.append("")
        mem_n = cells[w4[-1]]["targets"].get("nginx", {}).get("mem_kb_per_stream")
        mem_g = cells[w4[-1]]["targets"].get("localai-authd", {}).get("mem_kb_per_stream")
        L.append(f"Memory per idle stream, localai-authd ÷ nginx: {_ratio(mem_g, mem_n)}.\n")
    L.append("## Max streams with zero lost chunks (streams tested: W2, W3, W4)\n")
    for t in names:
        best = 0
        for _label, c in cells.items():
            if c["workload"] not in ("W2", "W3", "W4"):
                continue
            tg = c["targets"].get(t, {})
            lost = tg.get("lost_total") or tg.get("lost")
            errs = tg.get("stream_errors")
            if lost and lost["max"] == 0 and (errs is None or errs["max"] == 0):
                best = max(best, c["param"])
        L.append(f"- {t}: {best}")
    L.append("")
    if s.get("auth"):
        L.append("## Auth check (KeyStore.verify in-process; 200 keys in the table)\n")
        L.append("| key presented | verify µs | header parse + verify µs |\n|---|---|---|")
        for kind, v in s["auth"].items():
            L.append(f"| {kind} | {_fmt(v['verify'], 2)} | {_fmt(v['extract_and_verify'], 2)} |")
        L.append("")
    L.append("## Correctness (same run)\n")
    L.append(
        "| round | target | W1 bodies identical | bad keys refused | bad keys at upstream | "
        "credentials at upstream |\n|---|---|---|---|---|---|"
    )
    for c in data["correctness"]:
        L.append(
            f"| {c['round'] + 1} | {c['target']} | {c['w1_identical']} | "
            f"{c['bad_refused'] if c['target'] != 'direct' else 'n/a'} | "
            f"{c['bad_reached_upstream'] if c['target'] != 'direct' else 'n/a'} | "
            f"{c['creds_reached_upstream'] if c['target'] != 'direct' else 'n/a'} |"
        )
    mism = sum(
        r["metrics"].get("digest_mismatch", 0) or 0
        for r in data["records"]
        if r["workload"] in ("TTFB", "W2", "W3", "W4")
    )
    w5_bad: dict[str, int] = defaultdict(int)
    for r in data["records"]:
        if r["workload"] == "W5":
            w5_bad[r["target"]] += r["metrics"].get("bad_reached_upstream") or 0
    L.append(
        f"\nStream bodies whose SHA-256 differs from what the upstream sent (all rounds, all "
        f"targets): {mism}. W5 bad-key requests that reached the upstream (all rounds): "
        + ", ".join(f"{t} {n}" for t, n in w5_bad.items() if t != "direct")
        + ".\n"
    )
    L.append("## Settings\n")
    for k, v in meta["settings"].items():
        L.append(f"- **{k}**: {v}")
    L.append("")
    return "\n".join(L)


# ---- chart -----------------------------------------------------------------------------------


def chart(s: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    names = [
        t for t in _ordered(t for c in s["cells"].values() for t in c["targets"]) if t != "direct"
    ]
    palette = {"nginx": "tab:green", "localai-authd": "tab:red"}
    spare = iter(["tab:blue", "tab:purple", "tab:orange", "tab:brown", "tab:gray"])
    colors = {t: palette.get(t) or next(spare, "black") for t in names}
    panels = [
        (
            axes[0][0],
            "W1",
            "added_p50_us",
            "added_p99_us",
            "W1 added latency (µs; above 1, mostly queueing)",
            "concurrency",
        ),
        (
            axes[0][1],
            "W2",
            "added_gap_p50_us",
            "added_gap_p99_us",
            "W2 NDJSON 10 ms: added gap (µs)",
            "streams",
        ),
        (
            axes[1][0],
            "W3",
            "added_gap_p50_us",
            "added_gap_p99_us",
            "W3 SSE 5 ms: added gap (µs)",
            "streams",
        ),
        (
            axes[1][1],
            "W2",
            "added_transit_p50_us",
            "added_transit_p99_us",
            "W2: added transit per chunk (µs)",
            "streams",
        ),
    ]
    for ax, w, k50, k99, title, xlabel in panels:
        for t in names:
            for k, style in ((k50, "-o"), (k99, "--s")):
                pts = []
                for c in s["cells"].values():
                    st = c["targets"].get(t, {}).get(k) if c["workload"] == w else None
                    if st is not None:
                        pts.append((c["param"], st["median"], st["min"], st["max"]))
                if not pts:
                    continue
                pts.sort()
                xs = [p[0] for p in pts]
                ys = [p[1] for p in pts]
                lo = [p[1] - p[2] for p in pts]
                hi = [p[3] - p[1] for p in pts]
                label = f"{t} {'p50' if k == k50 else 'p99'}"
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    fmt=style,
                    color=colors[t],
                    label=label,
                    capsize=3,
                    alpha=0.9 if k == k50 else 0.6,
                )
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_yscale("symlog", linthresh=10)  # added figures can be slightly negative
        ax.set_xscale("symlog", linthresh=1)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(
        "localai-authd vs nginx: cost added over a direct connection "
        "(medians over rounds, bars = min…max; y linear below 10 µs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Re-render results.md, summary.json and chart.png of a run from its results.json."""
    import argparse
    import json
    import shutil

    ap = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    ap.add_argument("run_dir", type=Path, help="bench/out/<timestamp>")
    ap.add_argument("--publish", action="store_true", help="copy to bench/ as well")
    a = ap.parse_args()
    data = json.loads((a.run_dir / "results.json").read_text())
    s = summarize(data)
    (a.run_dir / "summary.json").write_text(json.dumps(s, indent=1))
    (a.run_dir / "results.md").write_text(markdown(data, s))
    chart(s, a.run_dir / "chart.png")
    if a.publish:
        here = Path(__file__).resolve().parent
        shutil.copy(a.run_dir / "chart.png", here / "chart.png")
        shutil.copy(a.run_dir / "results.md", here / "results.md")


if __name__ == "__main__":
    main()
