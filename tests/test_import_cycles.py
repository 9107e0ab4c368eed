"""No import cycles between the modules of ``edgeops``: every layer knows only the layers below it.

The graph is built from the source with ``ast`` (nothing is imported). Its rule, for every module:

* every ``import``/``from ... import`` counts, at module level and inside functions and classes
  (a lazy import defers the cost, not the knowledge), except those under ``if TYPE_CHECKING:``
  (annotations only; they never run);
* relative imports are resolved against the module's package; ``from pkg import name`` is an edge to
  the submodule ``pkg.name`` when that module exists, else to ``pkg`` itself;
* an edge goes to the module named, not to the packages Python runs on the way there (``from
  ..runtime.model import x`` is one edge to ``edgeops.runtime.model``), so a package ``__init__.py``
  that re-exports from its submodules is an edge package -> submodule;
* ``edgeops/__init__.py`` is the public facade: its lazy re-exports (``edgeops.load``, ``edgeops.Agent``)
  are edges like any other, so no module inside the package may import the facade (``from .. import
  load``, ``import edgeops``): it imports the module that defines the name instead.

Each strongly connected component with more than one module (or a module importing itself) is a
cycle; the test lists them all with their edges and fails.
"""

from __future__ import annotations

import ast
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgeops"


def module_files(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file under the package folder."""
    base = package_dir.parent
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, wherever it is, except the bodies of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` restricted to the modules of the package (see the module docstring)."""
    modules = module_files(package_dir)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.name` where name is not a module
                    target = target.rpartition(".")[0]
                if target:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that are cycles (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a]) if b in members]
    return "cycle between " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_edgeops_has_no_import_cycles():
    graph = import_graph(ROOT)
    assert len(graph) > 50 and any(graph.values()), "the graph came out empty: the scanner is broken"
    found = cycles(graph)
    assert not found, "import cycles in edgeops (move the shared code down a layer):\n" + "\n".join(
        describe(graph, c) for c in found)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_planted_cycle_is_found(tmp_path):
    """A lazy relative import back up the layers is a cycle; TYPE_CHECKING imports and leaf modules are not."""
    _write(tmp_path, {
        "pkg/__init__.py": "from .low import f\n",
        "pkg/low.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .high import g
            def f():
                from .mid import helper
                return helper
            """,
        "pkg/mid/__init__.py": "",
        "pkg/mid/helper.py": "from ..high import g\n",
        "pkg/high.py": "from . import low\ndef g():\n    import pkg.low\n",
        "pkg/leaf.py": "import os\nfrom . import low\n",
    })
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg"] == {"pkg.low"}
    assert graph["pkg.low"] == {"pkg.mid.helper"}  # `from .mid import helper`: the submodule; not .high
    assert graph["pkg.mid.helper"] == {"pkg.high"}
    assert graph["pkg.high"] == {"pkg.low"}
    assert cycles(graph) == [["pkg.high", "pkg.low", "pkg.mid.helper"]]
    assert "pkg.low -> pkg.mid.helper" in describe(graph, cycles(graph)[0])


def test_no_cycle_when_imports_point_one_way(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "def __getattr__(name):\n    from .top import api\n    return api\n",
        "pkg/top.py": "from .base import x as api\n",
        "pkg/base.py": "x = 1\n",
        "pkg/self_ref.py": "if True:\n    import os\n",
    })
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg"] == {"pkg.top"} and graph["pkg.top"] == {"pkg.base"}
    assert cycles(graph) == []
    graph["pkg.base"].add("pkg.base")  # a module importing itself counts too
    assert cycles(graph) == [["pkg.base"]]


def test_scanner_sees_the_package_files():
    names = module_files(ROOT)
    assert "edgeops" in names and "edgeops.runtime.model" in names
    assert all(os.path.isfile(p) for p in names.values())
