"""The import graph of toolchain/ and host/ (with the public API, host/api/ = `tinyfed`)
has no cycles (ARCHITECTURE.md rule 12).

Every import counts, including those inside functions (a lazy import is still
a dependency); only ``if TYPE_CHECKING:`` blocks are left out.  Also checked:
the layering of docs/ARCHITECTURE.md -- the shared-facts layer imports nothing
else of tinyfed, the toolchain never imports the host, and the toolchain's
sub-packages depend on each other without a circle either.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# import name -> folder (pyproject.toml); host/api/ is the public API, the package `tinyfed`
PACKAGES = {"tinyfed": ROOT / "host" / "api", "tinyfed_toolchain": ROOT / "toolchain", "tinyfed_host": ROOT / "host"}


def _module_name(top: str, folder: Path, path: Path) -> str:
    parts = [top, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for top, folder in PACKAGES.items():
        for p in sorted(folder.rglob("*.py")):
            if top == "tinyfed_host" and PACKAGES["tinyfed"] in p.parents:
                continue  # the API's files are the package `tinyfed`
            out[_module_name(top, folder, p)] = p
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of this tree that ``name`` (a module or a name in one) refers to."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> modules of toolchain/ and host/ it imports (a fresh copy)."""
    return {k: set(v) for k, v in _import_graph().items()}


@lru_cache(maxsize=1)
def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", 0) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                r = _resolve(t, modules)
                if r is not None and r != mod:
                    graph[mod].add(r)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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


def _where(graph: dict[str, set[str]], comp: list[str]) -> str:
    return "; ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 60  # the walk found the tree
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(_where(graph, c) for c in found)


def test_cycle_detection_finds_a_planted_cycle() -> None:
    graph = import_graph()
    graph["tinyfed_toolchain.facts.paths"].add("tinyfed_toolchain.build")  # plant: facts -> build -> ... -> facts
    assert any("tinyfed_toolchain.facts.paths" in c and "tinyfed_toolchain.build" in c for c in cycles(graph))


def _subpackage(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (ROOT / "toolchain" / parts[-1]).is_dir() else mod


def test_layers() -> None:
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("tinyfed_toolchain.facts"):
            outside = {d for d in deps if not d.startswith("tinyfed_toolchain.facts")}
            assert not outside, f"{mod}: the shared-facts layer imports {sorted(outside)}"
        if mod.startswith("tinyfed_toolchain"):
            up = {d for d in deps if not d.startswith("tinyfed_toolchain")}
            assert not up, f"{mod}: the toolchain imports the host or the API ({sorted(up)})"
        if mod.startswith("tinyfed_host") and not mod.startswith(("tinyfed_host.cli", "tinyfed_host.commands")):
            api = {d for d in deps if d == "tinyfed" or d.startswith("tinyfed.")}
            assert not api, f"{mod}: only the CLI stands on the public API ({sorted(api)})"
    # the toolchain's sub-packages (facts, compile, ml, training, image) form no circle either
    sub: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        if mod.startswith("tinyfed_toolchain."):
            a = _subpackage(mod)
            sub.setdefault(a, set()).update(_subpackage(d) for d in deps
                                            if d.startswith("tinyfed_toolchain.") and _subpackage(d) != a)
    found = cycles(sub)
    assert not found, "sub-package cycles: " + " | ".join(_where(sub, c) for c in found)
