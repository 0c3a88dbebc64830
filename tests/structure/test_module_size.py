"""No module of the package is over 400 lines: past that, a module has more than one job and
is split. An exception needs a reason written here; the list should be empty.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400

# path (relative to the checkout) -> why it may be longer, for now. Remove an entry as soon as
# the module is split; an entry for a module that is short enough fails the test.
ALLOWED: dict[str, str] = {}


def lengths() -> dict[str, int]:
    return {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in sorted((ROOT / "localai_authd").rglob("*.py"))
    }


def test_no_module_over_the_limit() -> None:
    over = {p: n for p, n in lengths().items() if n > LIMIT and p not in ALLOWED}
    assert over == {}, f"split these modules (over {LIMIT} lines): {over}"


def test_every_exception_is_still_needed() -> None:
    sizes = lengths()
    stale = {p: sizes.get(p) for p in ALLOWED if sizes.get(p, 0) <= LIMIT}
    assert stale == {}, f"remove from ALLOWED (gone or short enough now): {stale}"
