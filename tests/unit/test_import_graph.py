"""The import graph of ``src/mediaplane``, read from the source:

- arrows point down: no cycle between packages, counting imports inside functions, since an
  import hidden in a function to dodge a cycle is still a cycle (imports under
  ``if TYPE_CHECKING:`` are annotations, never run, and do not count);
- a package is entered through its ``__init__``: no module imports another package's private
  module (``mediaplane.media._probe``) or a name past its ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import mediaplane

ROOT = Path(mediaplane.__file__).parent


def _unit(module: str) -> str:
    """The package (or top-level module) a dotted module name belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)
    return out


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every mediaplane import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, list[str], int]] = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [
                (a.name, [], node.lineno) for a in node.names if a.name.startswith("mediaplane")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "mediaplane":  # from mediaplane import catalog, __version__
                out += [(f"mediaplane.{a.name}", [], node.lineno) for a in node.names]
            elif target.startswith("mediaplane"):
                out.append((target, [a.name for a in node.names], node.lineno))
    return out


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        here = _unit(_module_name(path))
        for target, _, _ in _imports(path):
            there = _unit(target)
            if there not in (here, "mediaplane.__version__"):
                graph[here].add(there)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_cycles_between_packages() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_packages_are_entered_through_their_public_surface() -> None:
    bad: list[str] = []
    for path in _sources():
        here = _unit(_module_name(path))
        for target, names, line in _imports(path):
            there = _unit(target)
            if there in (here, "mediaplane.__version__"):
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if target != there:
                bad.append(f"{where} imports {target} (enter {there} through its __init__)")
                continue
            exported = getattr(importlib.import_module(there), "__all__", None)
            if exported is None:  # a top-level module without __all__: all of it is public
                continue
            past = [n for n in names if n not in exported and n != "*"]
            if past:
                bad.append(f"{where} takes {past} from {there}, past its __all__")
    assert not bad, "\n".join(bad)
