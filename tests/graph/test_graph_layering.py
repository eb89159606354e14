"""``nalarc.graph`` depends on ``nalarc.ir`` only (and the stdlib, rich, networkx)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nalarc
import nalarc.graph

PACKAGE = Path(nalarc.__file__).resolve().parent
GRAPH = PACKAGE / "graph"
THIRD_PARTY = {"rich", "networkx"}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(nalarc subpackages/modules, other top-level modules) imported by ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                top, _, rest = node.module.partition(".")
                (ours.add(rest.split(".")[0]) if top == "nalarc" else others.add(top))
            elif node.level == 1:
                continue  # inside nalarc.graph
            else:  # from .. import x / from ..x import y
                ours.add(node.module.split(".")[0] if node.module else "?")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                (ours.add(rest.split(".")[0]) if top == "nalarc" else others.add(top))
    return ours, others


def test_graph_imports_only_ir() -> None:
    files = sorted(GRAPH.glob("*.py"))
    assert files
    for path in files:
        ours, others = _imports(path)
        assert ours <= {"ir"}, f"{path.name} imports nalarc.{sorted(ours - {'ir'})}"
        assert others <= THIRD_PARTY | set(sys.stdlib_module_names) | {"__future__"}, (path.name, others)


def test_private_modules_and_public_api() -> None:
    for path in GRAPH.glob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), path.name
    assert nalarc.graph.__all__ == sorted(nalarc.graph.__all__, key=lambda n: (not n.isupper(), n))
    for name in nalarc.graph.__all__:
        assert hasattr(nalarc.graph, name), name


def test_importing_graph_does_not_import_the_compiler_or_executor() -> None:
    import subprocess

    code = ("import sys, nalarc.graph; bad = [m for m in sys.modules if m.split('.')[:2] in "
            "(['nalarc', 'frontend'], ['nalarc', 'passes'], ['nalarc', 'codegen'], ['nalarc', 'executor'])] "
            "+ [m for m in ('libcst', 'trio') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
