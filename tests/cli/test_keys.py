"""authctl import's secret on stdin: one line, less the line break echo adds; no more."""

from __future__ import annotations

import pytest

from localai_authd.errors import EXIT_USAGE
from tests.cli.runner import SECRET, authctl, failed, ok
from tests.control.conftest import ThreadedControl


@pytest.mark.parametrize("end", ["", "\n", "\r\n", "\r"])
def test_one_trailing_line_break_is_not_part_of_the_secret(
    threaded: ThreadedControl, end: str
) -> None:
    ok(authctl(threaded, "import", "legacy", input=SECRET + end))
    ident = threaded.c.store.verify(SECRET)
    assert ident is not None and ident.name == "legacy"


@pytest.mark.parametrize(
    ("stdin", "why"),
    [
        (SECRET + "\n\n", "ends with more than one line break (one, as echo adds, is fine)"),
        (SECRET + "\r\n\r\n", "ends with more than one line break (one, as echo adds, is fine)"),
        ("\n" + SECRET, "starts with a line break"),
        (
            SECRET[:10] + "\n" + SECRET[10:],
            "has a line break inside it, after character 10 (2 lines); a secret is one line",
        ),
        (
            SECRET + "\n" + SECRET + "\n",
            f"has a line break inside it, after character {len(SECRET)} (2 lines); a secret "
            "is one line",
        ),
    ],
)
def test_any_other_line_break_is_refused_saying_where(
    threaded: ThreadedControl, stdin: str, why: str
) -> None:
    for command in (["import", "legacy"], ["upstream-key", "set", "vllm"]):
        line = failed(authctl(threaded, *command, input=stdin), EXIT_USAGE)
        assert line == f"authctl: the secret on stdin {why}"
        assert SECRET not in line and SECRET[:10] not in line
    assert threaded.c.store.all() == []
    assert ok(authctl(threaded, "upstream-key", "list")).strip() == "no upstream keys"
