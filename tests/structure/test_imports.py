"""The package's import graph has no cycle: each module can be read (and changed) knowing only
what it imports, and the planes stay layered (gateway and control over keys, keys over vault).

The graph is read from the source with ast, not by importing: every `import` and `from ...
import` of a localai_authd module, at any depth in the module, including those under
`if TYPE_CHECKING:`: a cycle only the type checker sees is still two modules that cannot be
understood or changed one without the other. `from package import name` counts as importing
the submodule when `name` is one, else the package itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "localai_authd"


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imports_of(name: str, path: Path, known: dict[str, Path], package: str) -> set[str]:
    """The package's modules that ``name`` imports."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = name.split(".")
                # A package's level-1 import is relative to itself; a module's to its package.
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                for a in node.names
            ]
        for target in targets:
            # `import a.b.c` imports a.b.c; the nearest known module is what runs.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.split(".")[0] == package and target != name:
                out.add(target)
    return out


def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports_of(name, path, known, package) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from . import a\n",
        "pkg/a.py": "import os\nfrom .sub import b\nfrom pkg.sub.c import C\n",
        "pkg/sub/__init__.py": "from .b import B\n",
        "pkg/sub/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from .. import a\n",
        "pkg/sub/c.py": "def f():\n    import pkg.sub\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert graph(tmp_path, "pkg") == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b", "pkg.sub.c"},
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.b": {"pkg.a"},
        "pkg.sub.c": {"pkg.sub"},
    }
    # a -> sub.c -> sub -> sub.b -> a: one component of four.
    assert cycles(graph(tmp_path, "pkg")) == [["pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert len(graph()) > 20  # the real package is read too


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
