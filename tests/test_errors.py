"""The error tree: its docstring is its truth, every error lives in errors.py, and the exit
codes are documented once and shown the same everywhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from localai_authd import errors
from localai_authd.errors import AuthdError, from_wire

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "localai_authd"


def _classes() -> list[type[AuthdError]]:
    def walk(cls: type[AuthdError]) -> list[type[AuthdError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in walk(sub))]

    return [c for c in walk(AuthdError) if c.__module__ == errors.__name__]


def _drawn() -> list[tuple[str, str | None, str, str, str]]:
    """(class, parent, code, status, exit code) for each line of the docstring's tree."""
    doc = errors.__doc__ or ""
    tree = doc.split("::", 1)[1].split("\n\n")[1]
    rows: list[tuple[str, str | None, str, str, str]] = []
    stack: list[str] = []
    for line in tree.splitlines():
        m = re.match(r"^(?P<indent>[ │├└─]*)(?P<name>\w+)\s+(?P<code>\w+)\s+(?P<st>\d+|-)\s+"
                     r"(?P<exit>\d+)", line.strip("\n")[4:])  # fmt: skip
        assert m, line
        depth = len(m["indent"]) // 4
        del stack[depth:]
        rows.append((m["name"], stack[-1] if stack else None, m["code"], m["st"], m["exit"]))
        stack.append(m["name"])
    return rows


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    drawn = _drawn()
    assert {name for name, *_ in drawn} == {c.__name__ for c in _classes()}
    for name, parent, code, status, exit_code in drawn:
        cls = getattr(errors, name)
        assert parent is None or cls.__bases__ == (getattr(errors, parent),), name
        assert cls.code == code, name
        assert status == "-" or cls.http_status == int(status), name
        assert cls.exit_code == int(exit_code), name


def test_codes_are_unique_and_every_exit_code_is_documented() -> None:
    codes = [c.code for c in _classes()]
    assert len(codes) == len(set(codes))
    assert {c.exit_code for c in _classes()} <= set(errors.EXIT_STATUS)


def test_every_authd_error_lives_in_errors_py() -> None:
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & {c.__name__ for c in _classes()}:
                    elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert elsewhere == []


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_code_comes_back_from_the_wire_as_its_class(cls: type[AuthdError]) -> None:
    err = from_wire(cls.code, "what the daemon said", 418)
    assert type(err) is cls
    assert (err.message, err.code, err.http_status) == ("what the daemon said", cls.code, 418)


def test_an_unknown_code_keeps_the_daemons_words() -> None:
    err = from_wire("something_new", "a newer daemon's error", 500)
    assert isinstance(err, errors.RemoteError)
    assert (err.code, err.message, err.exit_code) == ("something_new", "a newer daemon's error", 1)


def test_man_page_and_help_show_the_same_exit_codes() -> None:
    from click.testing import CliRunner

    from localai_authd.cli import cli

    page = (ROOT / "packaging" / "man" / "authctl.1.scd").read_text()
    section = page.split("# EXIT STATUS", 1)[1].split("\n# ", 1)[0]
    documented = {int(c): m for c, m in re.findall(r"^\*(\d+)\*\n\t(.+)$", section, re.M)}
    assert set(documented) == set(errors.EXIT_STATUS)
    for code, meaning in errors.EXIT_STATUS.items():
        words = documented[code].rstrip(".").lower().replace("bad usage: an ", "bad usage: ")
        assert words == meaning.lower(), code
    help_text = CliRunner().invoke(cli, ["--help"]).stdout
    for code, meaning in errors.EXIT_STATUS.items():
        assert f"  {code:<3} {meaning}" in help_text
