"""The package layout holds: imports go one way (no cycle), and modules stay readable in size."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.mockrt import ROOT

COMPONENTS = ROOT / "components"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """What a module imports from components; `from pkg import submodule` is an edge to the submodule."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs if len(subs) == len(node.names) else {node.module, *subs}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("components")}
    return found


def test_no_import_cycle_between_modules() -> None:
    modules = {_module(p): p for p in COMPONENTS.rglob("*.py")}
    graph = {m: {i for i in _imports(p, set(modules)) if i in modules and i != m} for m, p in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle.extend([*path[path.index(n):], n] if n in path else [m, n])
                return True
            if n not in state and visit(n, [*path, n]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if m not in state and visit(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)


def test_modules_over_300_lines_say_why_at_the_top() -> None:
    long = []
    # (bkf-node.sh is shell, shipped whole to bare hosts: docs/architecture.md says why it is one file)
    for p in [*COMPONENTS.rglob("*.py"), *(ROOT / "review").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        lines = p.read_text().splitlines()
        if len(lines) > 300 and "Over 300 lines on purpose" not in "\n".join(lines[:15]):
            long.append(f"{p.relative_to(ROOT)} ({len(lines)})")
    assert long == []
