"""authctl through click's CliRunner, the way every test in tests/cli/ runs it."""

from __future__ import annotations

from click.testing import CliRunner, Result

from localai_authd.cli import cli
from tests.control.conftest import ThreadedControl

SECRET = "legacy-static-key-0123456789abcdef"


def authctl(t: ThreadedControl, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--socket", str(t.c.sock), *args], input=input)


def ok(r: Result) -> str:
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
    assert r.stderr == ""
    return r.stdout


def failed(r: Result, code: int) -> str:
    """The one line on stderr, checked for shape; nothing on stdout."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("authctl: "), r.stderr
    return lines[0]
