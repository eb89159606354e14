"""The layout shows the architecture: frontend -> ir <- passes; executor -> ir, policies, worker, wire;
worker -> wire and the runtime, never the driver; wire -> nothing of nalarc but its errors.

Parses every module's imports and fails on an import that crosses a layer the
wrong way, and checks the public API surface.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nalarc

PACKAGE = Path(nalarc.__file__).resolve().parent

#: layer -> layers it must never import
FORBIDDEN = {
    "ir": {"frontend", "passes", "codegen", "executor", "cli", "policies"},
    "frontend": {"passes", "codegen", "executor", "cli", "policies"},
    "passes": {"frontend", "codegen", "executor", "cli", "policies"},
    "codegen": {"executor", "cli", "policies", "passes"},
    "executor": {"frontend", "passes", "codegen", "cli"},
    "policies": {"frontend", "passes", "codegen", "cli"},
    "graph": {"frontend", "passes", "codegen", "executor", "cli", "policies"},
    "llm": {"frontend", "passes", "codegen", "executor", "cli", "policies", "graph"},
    "workloads": {"frontend", "passes", "codegen", "executor", "cli", "policies", "graph", "llm"},
    # the worker: core, wire and runtime only (its executor imports are checked module by module below)
    "worker": {"frontend", "passes", "codegen", "cli", "policies", "graph", "llm", "workloads"},
    "wire": {"frontend", "passes", "codegen", "executor", "cli", "policies", "graph", "llm", "workloads", "worker", "ir"},
}

#: The runtime, until it moves from the executor to ``nalarc.runtime``: the executor modules a worker may import.
RUNTIME_IN_EXECUTOR = {"_rt", "_rt_async", "_asyncio_bridge", "_import_time", "_containers", "_exceptions"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    layer_parts = path.relative_to(PACKAGE).parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("nalarc."):
                found.add(node.module.split(".")[1])
            elif node.level > 0:
                base = list(layer_parts[:-1])
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    found.add(target[0])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nalarc."):
                    found.add(alias.name.split(".")[1])
    return found


def _targets(path: Path) -> set[str]:
    """Every nalarc module ``path`` imports, anywhere in it (functions too), as a dotted name."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] == "nalarc":  # the module, and each name as if it were a submodule
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "nalarc")
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "worker").glob("*.py")), ids=lambda p: p.name)
def test_the_worker_never_imports_the_driver(path: Path) -> None:
    driver = {t for t in _targets(path) if t.startswith("nalarc.executor")
              and t.split(".")[2:3] and t.split(".")[2] not in RUNTIME_IN_EXECUTOR}
    assert driver == set(), f"worker/{path.name} imports the driver: {sorted(driver)}"
    assert not {t for t in _targets(path) if t.startswith("nalarc.policies")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "wire").glob("*.py")), ids=lambda p: p.name)
def test_the_wire_imports_nothing_of_nalarc_but_its_errors(path: Path) -> None:
    outside = {t for t in _targets(path) if not t.startswith(("nalarc.wire", "nalarc._errors"))}
    assert outside == set(), f"wire/{path.name} imports {sorted(outside)}"


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] in FORBIDDEN)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_layering_violation(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    bad = _imports(path) & FORBIDDEN[layer]
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(bad)}"


def test_ir_is_data_only() -> None:
    for path in (PACKAGE / "ir").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import libcst" not in text and "import trio" not in text, path.name


def test_public_api() -> None:
    assert sorted(nalarc.__all__) == sorted(set(nalarc.__all__))
    for name in nalarc.__all__:
        assert hasattr(nalarc, name), name
    public = {n for n in dir(nalarc) if not n.startswith("_")}
    # every public attribute is exported on purpose (submodules aside)
    submodules = {"executor", "frontend", "ir", "passes", "codegen", "cli", "testing", "policies", "graph", "llm", "workloads", "annotations",
                  "wire", "worker"}
    assert public - submodules <= set(nalarc.__all__), sorted(public - submodules - set(nalarc.__all__))


def test_subpackages_declare_all() -> None:
    for sub in ("ir", "passes", "frontend", "codegen", "executor", "cli", "policies", "graph", "llm", "workloads",
                "wire", "worker"):
        module = __import__(f"nalarc.{sub}", fromlist=["__all__"])
        assert module.__all__, sub
        for name in module.__all__:
            assert hasattr(module, name), f"nalarc.{sub}.{name}"


def test_private_modules_are_underscored() -> None:
    public_modules = {"__init__.py", "__main__.py", "testing.py", "verify.py", "pprint.py", "pipeline.py"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "passes" or path.name in public_modules:
            continue
        assert path.name.startswith("_"), f"{path.relative_to(PACKAGE)} should be private (_name.py)"


def test_mypy_strict_is_clean() -> None:
    from mypy import api

    out, err, status = api.run(["--strict", "--no-error-summary", str(PACKAGE)])
    assert status == 0, out + err
