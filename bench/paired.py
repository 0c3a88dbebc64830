"""Paired A/B ratios from one bench run: per round, a target's added W1 latency (p50 minus
direct's, same round) and CPU per request divided by a baseline's; the median over rounds.

    python -m bench.paired bench/out/<stamp> [--base base]

Rounds interleave the targets in random order, so a slow stretch of the machine hits the
targets of one round alike: a ratio within a round is steadier than a ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def paired(run: Path, base: str) -> str:
    records = json.loads((run / "results.json").read_text())["records"]
    cells: dict[tuple[str, int, int], dict[str, dict[str, float]]] = defaultdict(dict)
    for rec in records:
        if rec["workload"] == "W1":
            cells[(rec["workload"], rec["param"], rec["round"])][rec["target"]] = rec["metrics"]
    targets = sorted({t for c in cells.values() for t in c} - {"direct", "nginx", base})
    out = [
        f"| cell | target | added p50 ÷ {base}'s (per round) | median | "
        f"CPU/req ÷ {base}'s (per round) | median |",
        "|---|---|---|---|---|---|",
    ]
    for conc in sorted({k[1] for k in cells}):
        rounds = sorted(k for k in cells if k[1] == conc)
        for t in targets:
            lat, cpu = [], []
            for k in rounds:
                c = cells[k]
                if t not in c or base not in c or "direct" not in c:
                    continue
                direct = c["direct"]["p50_us"]
                lat.append((c[t]["p50_us"] - direct) / (c[base]["p50_us"] - direct))
                cpu.append(c[t]["cpu_us_per_req"] / c[base]["cpu_us_per_req"])
            if not lat:
                continue  # the target did not run this cell beside the baseline
            out.append(
                f"| W1/{conc} | {t} | {' '.join(f'{x:.2f}' for x in lat)} | "
                f"**{statistics.median(lat):.2f}** | {' '.join(f'{x:.2f}' for x in cpu)} | "
                f"**{statistics.median(cpu):.2f}** |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--base", default="base")
    a = ap.parse_args()
    print(paired(a.run, a.base))


if __name__ == "__main__":
    main()
