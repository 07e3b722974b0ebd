"""The shape ARCHITECTURE.md describes, held against the code: layers, no import circles, no
switch on a source kind's name outside ``sources/``, no oversized module.

Imports are read from the source text (ast), every kind of them: module level, inside functions
(run time) and under TYPE_CHECKING (types are dependencies too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "helpers" / "gatekey"
MAX_LINES = 500
BUILTIN_KINDS = frozenset(
    {
        "keychain",
        "command",
        "entra",
        "oidc",
        "vault",
        "aws-secrets-manager",
        "azure-key-vault",
        "onepassword",
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    """0 core (kinds, config, cache, token, http...) < 1 the sources < 2 refresh, worker,
    runner < 3 diagnostics, fleet < 4 the command line < 5 the entry point."""
    if name in ("gatekey.fastpath", "gatekey.__main__"):
        return 5
    if name == "gatekey.cli" or name.startswith("gatekey.cli."):
        return 4
    if name.startswith(("gatekey.diagnostics", "gatekey.fleet")):
        return 3
    if name in ("gatekey.refresh", "gatekey.worker", "gatekey.worker_main", "gatekey.runner"):
        return 2
    if name.startswith("gatekey.sources."):
        return 1
    return 0


def imports(name: str) -> set[str]:
    """Every gatekey module ``name`` imports, wherever the import statement is."""
    found: set[str] = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_is_read():
    """Guards the checks below against passing on an empty graph."""
    assert len(MODULES) > 40
    assert "gatekey.kinds" in GRAPH["gatekey.config"]
    assert "gatekey.refresh" in GRAPH["gatekey.runner"]


def test_no_import_points_up_a_layer():
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(name)
    )
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not circles, f"import circles: {circles}"


def _kind_switches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        literals = set()
        for side in sides:
            values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            literals |= {v.value for v in values if isinstance(v, ast.Constant)}
        mentions_kind = any("kind" in ast.unparse(side) for side in sides)
        if mentions_kind and literals & BUILTIN_KINDS:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_switch_on_a_source_kind_outside_the_sources():
    outside = [
        p
        for p in MODULES.values()
        if "sources" not in p.relative_to(PACKAGE).parts and p.name != "kinds.py"
    ]
    switches = [line for p in outside for line in _kind_switches(p)]
    assert not switches, "ask the kind through kinds.py instead:\n" + "\n".join(switches)


def test_the_kind_switch_check_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    sample = tmp_path / "sample.py"
    sample.write_text(
        'if prof.kind in ("entra", "oidc"):\n    pass\nif token.kind == "jwt":\n    pass\n'
    )
    assert _kind_switches(sample) == ["sample.py:1: prof.kind in ('entra', 'oidc')"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_a_big_room(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(PACKAGE)} has {lines} lines"
