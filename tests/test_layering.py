"""The house in layers: every module imports only modules of its own package or of a layer below.

Order (HOUSE.md): leaf utilities < core < model < calculus < decide < render, emit (and search,
the closed-form search, beside them) < checking (and audit, the reader of derivation documents,
beside it) < the README's façades < the entry points. Layers of one rank do not import each other.
Every import counts, lazy ones inside functions included, and the
package-level table of ``symderive/__init__.py`` (its lazy exports) counts as imports too.
Run this file with ``-s`` to print the map of modules and arrows.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import symderive

PACKAGE = Path(symderive.__file__).resolve().parent

#: layer name -> rank; a module may import its own layer's modules and any lower rank
RANKS = {
    "leaf": 0,
    "core": 1,
    "model": 2,
    "calculus": 3,
    "decide": 4,
    "render": 5,
    "emit": 5,
    "search": 5,
    "checking": 6,
    "audit": 6,
    "facade": 7,
    "entry": 8,
}
LEAVES = {
    "symderive.errors",
    "symderive.clock",
    "symderive._callable",
    "symderive.display",
    "symderive.escape",
    "symderive.atomic",
}
FACADES = {
    "symderive.layer",
    "symderive.derive",
    "symderive.prove",
    "symderive.counterexample",
    "symderive.codegen",
    "symderive.report",
}
ENTRIES = {
    "symderive",
    "symderive.__main__",
    "symderive.cli",
    "symderive.testing",
    "symderive.pytest_plugin",
    "symderive.grade",
}


def module_name(path: Path) -> str:
    parts = ("symderive", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    if module in LEAVES:
        return "leaf"
    if module in FACADES:
        return "facade"
    if module in ENTRIES:
        return "entry"
    layer = module.split(".")[1]
    if layer not in RANKS:
        raise AssertionError(f"{module} belongs to no layer: give it one in HOUSE.md's order")
    return layer


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The symderive modules ``module`` imports anywhere in its text (function bodies too)."""
    tree = parsed(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, path.name == "__init__.py", node)
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "symderive" and n != module)
    return found


def lazy_exports() -> set[str]:
    """The modules ``symderive/__init__.py`` imports on attribute access (its two tables)."""
    targets = {m for m, _ in symderive._EXPORTS.values()} | set(symderive._SUBMODULES.values())
    return {f"symderive.{t}" for t in targets}


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The module's syntax tree, parsed once for every test of this file (parsing them all takes seconds)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {m: imports_of(m, p, set(mods)) for m, p in mods.items()}
    graph["symderive"] |= lazy_exports()
    return graph


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            a, b = layer_of(src), layer_of(dst)
            if a != b and RANKS[b] >= RANKS[a]:
                bad.append(f"{src} ({a}) -> {dst} ({b})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layering_map(graph: dict[str, set[str]]) -> str:
    """The map: each layer, its modules, and each module's arrows."""
    lines = []
    for layer in sorted(RANKS, key=lambda name: (RANKS[name], name)):
        members = sorted(m for m in graph if layer_of(m) == layer)
        lines.append(f"{RANKS[layer]} {layer}")
        for m in members:
            arrows = ", ".join(sorted(t.removeprefix("symderive.") for t in graph[m])) or "-"
            lines.append(f"    {m.removeprefix('symderive.') or 'symderive'} -> {arrows}")
    return "\n".join(lines)


def test_no_import_runs_up_the_layers():
    graph = import_graph()
    print(layering_map(graph))
    assert upward_arrows(graph) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_decider_never_sees_a_layer():
    # decide/ works on problems; only pose.py (which poses a layer's questions as problems) reads layers
    graph = import_graph()
    readers = sorted(
        m
        for m, targets in graph.items()
        if layer_of(m) == "decide" and m != "symderive.decide.pose" and any(layer_of(t) == "model" for t in targets)
    )
    assert readers == []


def test_every_module_has_a_layer():
    for m in modules():
        assert layer_of(m) in RANKS


def _imports_by_string(path: Path) -> list[str]:
    """The ``import_module("symderive...")``/``import_module(".x")`` calls of a module (a user's module, named at run time, is fine)."""
    found = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            first = node.args[0] if node.args else None
            text = ast.unparse(first) if first is not None else ""
            if "symderive" in text or text.lstrip("f'\"").startswith("."):
                found.append(text)
    return found


def test_no_import_by_string_outside_the_package_table():
    # the CLI imports what it uses: symderive's modules are imported by name only in
    # symderive/__init__.py's lazy table (whose targets the graph above includes)
    offenders = {m: _imports_by_string(p) for m, p in modules().items() if m != "symderive"}
    assert {m: calls for m, calls in offenders.items() if calls} == {}


@pytest.mark.parametrize(
    "src, dst, upward",
    [
        ("symderive.decide.verdict", "symderive.render.report", True),
        ("symderive.render.report", "symderive.emit.codegen", True),
        ("symderive.core.parse", "symderive.model.layer", True),
        ("symderive.model.layer", "symderive.core.parse", False),
        ("symderive.cli", "symderive.prove", False),
    ],
)
def test_the_checker_sees_an_upward_arrow(src, dst, upward):
    # the checks above could pass vacuously; the rule itself must tell up from down
    assert bool(upward_arrows({src: {dst}})) is upward


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
