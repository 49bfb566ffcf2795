"""The search package's imports point one way: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import nasblocks.search

PACKAGE = Path(nasblocks.search.__file__).parent


def module_name(path: Path) -> str:
    """``path``'s module name under nasblocks.search: ``engine``, ``outputs.results``, and
    ``samplers`` for ``samplers/__init__.py``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")} - {""}


def imports(path: Path) -> set[str]:
    """The nasblocks.search modules ``path`` imports, at module level or in a function
    (``if TYPE_CHECKING`` blocks are left out: they run only under a type checker), named as
    :func:`module_name` names them (``from nasblocks.search.outputs import results``:
    ``outputs.results``)."""
    tree = ast.parse(path.read_text())
    checking = {
        id(node)
        for top in ast.walk(tree)
        if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
        for node in ast.walk(top)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking or not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if node.module == "nasblocks.search":
            found |= {a.name for a in node.names}
        elif node.module.startswith("nasblocks.search."):
            base = node.module.removeprefix("nasblocks.search.")
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found - {"__init__"}


def test_no_import_cycles_in_search():
    graph = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py") if module_name(p)}
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt in graph:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, cycles[:5]
    assert "engine" not in set().union(*graph.values())  # nothing reaches back into the run
