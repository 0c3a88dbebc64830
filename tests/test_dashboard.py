"""The Grafana dashboard the package ships: it queries metrics the daemon exports, in PromQL
that promtool accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localai_authd.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "packaging" / "grafana" / "localai-authd.json"


def _exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def _exported() -> set[str]:
    m = Metrics()
    m.observe_record({"status": 200, "key": "k", "duration_ms": 1.0}, "chat", 0.1)
    m.observe_record({"status": 401, "outcome": "unauthenticated", "reason": "x"}, "unrouted")
    m.observe_record({"status": 429, "outcome": "limited", "reason": "rpm"}, "chat")
    m.observe_tokens("k", 1, 1)
    m.observe_upstream("", True, 0.001)
    m.observe_reload(True)
    return {
        s.name for f in text_string_to_metric_families(m.exposition().decode()) for s in f.samples
    }


def test_every_queried_metric_is_exported() -> None:
    exported = _exported()
    used = {n for e in _exprs() for n in re.findall(r"localai_authd_[a-z_]+", e)}
    assert used, "the dashboard queries nothing"
    assert used <= exported, used - exported

    # and every family the daemon exports is on the dashboard somewhere
    def family(n: str) -> str:
        return re.sub(r"_(bucket|count|sum|total)$", "", n)

    assert {family(n) for n in exported} == {family(n) for n in used}


def test_promql_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: apt-get install prometheus")
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(_exprs()):
        expr = e.replace("$__rate_interval", "5m").replace("$job", ".*")
        rules += [f"      - record: dashboard:expr{i}", f"        expr: {json.dumps(expr)}"]
    f = tmp_path / "rules.yml"
    f.write_text("\n".join(rules) + "\n")
    p = subprocess.run(
        [promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stdout + p.stderr
