"""The house's rules (issue 23), read from the source with ast: no import cycles between wefperf's
modules (imports inside functions count, `if TYPE_CHECKING:` ones do not), no module importing
another's private (_underscore) names, packages importing one way, and the core (runner/,
scaleout/, capacity/) reaching report/ only through the reporter protocols it owns."""

from __future__ import annotations

import ast
from pathlib import Path

import wefperf

SRC = Path(wefperf.__file__).parent
CORE = ("wefperf.runner", "wefperf.scaleout", "wefperf.capacity")


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run: at any depth, but not under `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _imports(name: str, path: Path, runtime_only: bool = True) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for each wefperf import of a module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = _runtime_nodes(tree) if runtime_only else [
        n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    out: list[tuple[str, str | None, int]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("wefperf")]
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module.startswith("wefperf"):
            out += [(module, a.name, node.lineno) for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, imported, _ in _imports(name, path):
            # `from package import submodule` needs the submodule (its package is imported anyway).
            target = f"{module}.{imported}" if f"{module}.{imported}" in modules else module
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
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

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(_graph()) == []


def test_no_private_names_imported_across_modules() -> None:
    crossings = [
        f"{name}:{line} imports {module}.{imported}"
        for name, path in _modules().items()
        for module, imported, line in _imports(name, path, runtime_only=False)
        if imported and imported.startswith("_") and not imported.startswith("__") and module != name
    ]
    assert crossings == []


def test_core_speaks_to_report_only_through_its_protocols() -> None:
    reaching = [
        f"{name}:{line} imports {module}"
        for name, path in _modules().items() if name.startswith(CORE)
        for module, _, line in _imports(name, path, runtime_only=False)
        if module.startswith("wefperf.report")
    ]
    assert reaching == []


# runner/preflight.py checks the --shard-results bucket before the load with scaleout/shards.split_s3
# (imported where it is used); every other import between packages goes one way.
ALLOWED_BACK_EDGES = {("runner", "scaleout")}


def test_packages_import_one_way() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        for target in targets:
            a, b = (m.split(".")[1] if "." in m else "wefperf" for m in (module, target))
            if a != b and (a, b) not in ALLOWED_BACK_EDGES:
                edges.setdefault(a, set()).add(b)
    assert cycles(edges) == []
