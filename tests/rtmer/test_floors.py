"""The floors of ``rtmer/`` (docs/architecture.md): what each may import, and no import circles.

Every ``import rtmer...`` counts, at the top of a module or inside a function (a lazy
import is still a dependency), read from the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rtmer"

MAY_IMPORT = {
    "errors": set(),
    "core": {"errors", "core"},
    "protocol": {"errors", "core"},
    "inputs": {"errors", "core", "inputs"},
    "outputs": {"errors", "core", "protocol", "outputs"},
    "client": {"errors", "core", "protocol"},
    "app": {"errors", "core", "protocol", "inputs", "outputs", "app", "<package>"},
    "__init__": {"errors", "core", "client"},
    "__main__": {"app"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The rtmer modules ``path`` imports (``from rtmer.x import y`` counts as rtmer.x.y if that is a module)."""
    got: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            got.update(a.name for a in node.names if a.name.startswith("rtmer"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rtmer") and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                got.add(sub if sub in modules else node.module)
    return got


def _floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "<package>"
    return {"errors": "errors", "protocol": "protocol", "client": "client", "__main__": "__main__"}.get(
        parts[1], parts[1])


GRAPH = {name: _imports(path, _modules()) for name, path in _modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_from_the_floors_below_it(module: str) -> None:
    floor = "__init__" if module == "rtmer" else _floor(module)
    allowed = MAY_IMPORT[floor]
    wrong = sorted(m for m in GRAPH[module] if _floor(m) not in allowed and m != "rtmer")
    assert not wrong, f"{module} ({floor}) imports {wrong}; {floor} may import {sorted(allowed)}"


def test_no_import_circles() -> None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if dep == "rtmer" or dep not in GRAPH:
                continue
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_the_floors_are_the_folders() -> None:
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "core", "inputs", "outputs", "app"}
