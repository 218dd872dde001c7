"""No import cycles between the modules of ebpfpy, read statically from the source.

Every ``*.py`` under ``ebpfpy/`` is parsed with ``ast`` (nothing is imported). An edge A -> B is
any import of B in A: at module level or inside a function, ``import x.y``, ``from x import y``
(an edge to the submodule ``x.y`` when ``y`` is one, else to ``x``), relative imports, and
``importlib.import_module("literal")``. Imports under ``if TYPE_CHECKING:`` are not edges: they
never run. An import of a package is an edge to its ``__init__`` only, not to its parents: a
submodule's ``from . import sibling`` does not count as importing the package's ``__init__``
(Python has already started that by then), but ``from . import name`` of something the
``__init__`` defines does, and is the usual way a package ends up importing itself.

A cycle is a strongly connected component of more than one module, or a module importing
itself; the failure lists each one with the import lines that close it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ebpfpy"

# Cycles tolerated, each the exact set of modules of one component: none, and it should stay so.
ALLOWED_CYCLES: set[frozenset[str]] = set()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.path}:{self.line})"


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><name> import ...`` in ``package``."""
    if level == 0:
        return name
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not name):
        return None  # beyond the top-level package: an ImportError at run time
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, modules: dict[str, Path]):
        self.module, self.path, self.modules = module, path, modules
        is_package = path.name == "__init__.py"
        self.package = module if is_package else module.rpartition(".")[0]
        self.edges: list[Edge] = []

    def _add(self, target: str | None, line: int) -> None:
        # Only modules of ours; `import ebpfpy.x.y` is an edge to ebpfpy.x.y alone (ebpfpy.x has
        # started importing by the time it runs).
        edge = Edge(self.module, target, self.path, line)
        if target in self.modules and edge not in self.edges:
            self.edges.append(edge)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        base = _resolve(node.module or "", node.level, self.package)
        if base is None:
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.modules else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name != "import_module" or not node.args:
            return
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return
        target = first.value
        level = len(target) - len(target.lstrip("."))
        if level:
            anchor = node.args[1] if len(node.args) > 1 else next(
                (kw.value for kw in node.keywords if kw.arg == "package"), None
            )
            if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
                package = anchor.value
            elif isinstance(anchor, ast.Name) and anchor.id == "__name__":
                package = self.module
            elif isinstance(anchor, ast.Name) and anchor.id == "__package__":
                package = self.package
            else:
                return
            self._add(_resolve(target[level:], level, package), node.lineno)
        else:
            self._add(target, node.lineno)


def import_edges(root: Path, package: str) -> list[Edge]:
    modules = find_modules(root, package)
    edges = []
    for module, path in modules.items():
        collector = _ImportCollector(module, path.relative_to(root), modules)
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        edges.extend(collector.edges)
    return edges


def strongly_connected(nodes: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit to worry about)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(succ.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(succ.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def find_cycles(edges: list[Edge]) -> dict[frozenset[str], list[Edge]]:
    """Each cycle's modules -> the edges between them."""
    succ: dict[str, set[str]] = {}
    for edge in edges:
        succ.setdefault(edge.source, set()).add(edge.target)
    nodes = sorted({e.source for e in edges} | {e.target for e in edges})
    cycles = {}
    for component in strongly_connected(nodes, succ):
        members = frozenset(component)
        if len(component) > 1 or component[0] in succ.get(component[0], ()):
            cycles[members] = [e for e in edges if e.source in members and e.target in members]
    return cycles


def describe(cycles: dict[frozenset[str], list[Edge]]) -> str:
    blocks = []
    for members, edges in sorted(cycles.items(), key=lambda item: sorted(item[0])):
        lines = [f"cycle between {', '.join(sorted(members))}:"]
        lines += [f"    {edge}" for edge in sorted(edges, key=lambda e: (e.source, e.line, e.target))]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def test_no_import_cycles():
    cycles = find_cycles(import_edges(ROOT, PACKAGE))
    unexpected = {members: edges for members, edges in cycles.items() if members not in ALLOWED_CYCLES}
    if unexpected:
        pytest.fail(f"{len(unexpected)} import cycle(s) in {PACKAGE}:\n{describe(unexpected)}", pytrace=False)


def test_the_graph_is_read_the_way_python_imports(tmp_path):
    files = {
        "pkg/__init__.py": "from .a import A\n",
        # from . import <submodule>: an edge to the submodule, not to pkg/__init__.py.
        "pkg/a.py": "from . import b\nA = 1\n",
        # from pkg import <name defined in __init__>: an edge to pkg/__init__.py, which imports a.
        "pkg/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from .c import C\n"
            "else:\n"
            "    import os\n"
            "def f():\n"
            "    from pkg import A\n"
        ),
        "pkg/c.py": "import importlib\nsub = importlib.import_module('.sub.d', __package__)\nimport json\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "from .. import c\nfrom ..sub import e\nimport pkg.sub.e as e2\n",
        "pkg/sub/e.py": "from importlib import import_module\nimport_module('pkg.sub.e')\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    edges = import_edges(tmp_path, "pkg")
    assert sorted((e.source, e.target, e.line) for e in edges) == [
        ("pkg", "pkg.a", 1),
        ("pkg.a", "pkg.b", 1),
        ("pkg.b", "pkg", 7),
        ("pkg.c", "pkg.sub.d", 2),
        ("pkg.sub.d", "pkg.c", 1),
        ("pkg.sub.d", "pkg.sub.e", 2),
        ("pkg.sub.d", "pkg.sub.e", 3),
        ("pkg.sub.e", "pkg.sub.e", 2),
    ]
    assert set(find_cycles(edges)) == {
        frozenset({"pkg", "pkg.a", "pkg.b"}),
        frozenset({"pkg.c", "pkg.sub.d"}),
        frozenset({"pkg.sub.e"}),
    }


def test_every_import_of_ours_names_a_module_that_exists():
    """A lazy ``from .x import y`` inside a function is only run on some paths; a wrong
    name there (a module moved by a refactor) would surface as a user's crash. Every
    ``from``-import that resolves into the package must name a module or package of it."""
    modules = find_modules(ROOT, PACKAGE)
    missing = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            base = _resolve(node.module or "", node.level, package)
            if base is None or not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            if base not in modules:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: no module {base}")
    assert not missing, "\n".join(missing)
