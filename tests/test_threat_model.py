"""THREAT_MODEL.md names a test for every threat: each one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "THREAT_MODEL.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 20
    for row in rows:
        named = re.findall(r"`((?:tests|packaging)/[^`]*)`", row.split("|")[4])
        assert named, f"no test named for: {row[:80]}"
        for path in named:
            assert (ROOT / path).exists(), f"THREAT_MODEL.md names {path}, which does not exist"
