"""The layout shows the architecture: frontend -> ir <- passes; executor -> runtime, ir, policies; serve -> executor;
executor -> worker, wire; worker -> runtime, wire, never the driver; wire -> nothing of nalarc but its errors.

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
    "ir": {"frontend", "passes", "codegen", "executor", "cli", "policies", "runtime"},
    "frontend": {"passes", "codegen", "executor", "cli", "policies", "runtime"},
    "passes": {"frontend", "codegen", "executor", "cli", "policies", "runtime"},
    # codegen emits the runtime's names as text: it never imports the runtime
    "codegen": {"executor", "cli", "policies", "passes", "runtime"},
    # what generated code imports: nothing of the driver, the policies or the compiler
    "runtime": {"executor", "policies", "cli", "frontend", "passes", "codegen", "serve", "worker", "wire"},
    "executor": {"frontend", "passes", "codegen", "cli", "serve"},
    "serve": {"frontend", "passes", "codegen", "cli", "policies", "graph"},
    "policies": {"frontend", "passes", "codegen", "cli"},
    "graph": {"frontend", "passes", "codegen", "executor", "cli", "policies"},
    "llm": {"frontend", "passes", "codegen", "executor", "cli", "policies", "graph"},
    "workloads": {"frontend", "passes", "codegen", "executor", "cli", "policies", "graph", "llm"},
    # the worker: nalarc's core, the wire and the runtime; never the driver
    "worker": {"executor", "policies", "serve", "frontend", "passes", "codegen", "cli", "graph", "llm", "workloads"},
    # the wire: nothing of nalarc but its errors (see test_the_wire_imports_nothing_of_nalarc_but_its_errors)
    "wire": {"executor", "worker", "runtime", "policies", "serve", "frontend", "passes", "codegen", "cli", "graph", "llm",
             "workloads", "ir"},
}


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


def _runtime_modules_imported(path: Path) -> set[str]:
    """``nalarc.runtime.X`` modules that ``path`` imports (absolute or relative)."""
    package = ["nalarc", *path.relative_to(PACKAGE).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            if module[:2] == ["nalarc", "runtime"]:
                found.add(".".join(module))
                found.update(f"{'.'.join(module)}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("nalarc.runtime"))
    return found


def test_runtime_internals_stay_inside() -> None:
    """Outside nalarc/runtime, only ``nalarc.runtime`` and ``nalarc.runtime.lowlevel`` are imported."""
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "runtime":
            continue
        private = {m for m in _runtime_modules_imported(path) if m.split(".")[2:3] and m.split(".")[2].startswith("_")}
        assert not private, f"{path.relative_to(PACKAGE)} reaches into {sorted(private)}"


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
    submodules = {"executor", "runtime", "frontend", "ir", "passes", "codegen", "cli", "testing", "policies", "graph", "llm", "workloads", "annotations", "serve",
                  "wire", "worker"}
    assert public - submodules <= set(nalarc.__all__), sorted(public - submodules - set(nalarc.__all__))


def test_subpackages_declare_all() -> None:
    for sub in ("ir", "passes", "frontend", "codegen", "executor", "runtime", "runtime.lowlevel", "cli", "policies", "graph", "llm", "workloads", "serve",
                "wire", "worker"):
        module = __import__(f"nalarc.{sub}", fromlist=["__all__"])
        assert module.__all__, sub
        for name in module.__all__:
            assert hasattr(module, name), f"nalarc.{sub}.{name}"


def test_private_modules_are_underscored() -> None:
    public_modules = {"__init__.py", "__main__.py", "testing.py", "verify.py", "pprint.py", "pipeline.py", "lowlevel.py"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "passes" or path.name in public_modules:
            continue
        assert path.name.startswith("_"), f"{path.relative_to(PACKAGE)} should be private (_name.py)"


def test_mypy_strict_is_clean() -> None:
    from mypy import api

    out, err, status = api.run(["--strict", "--no-error-summary", str(PACKAGE)])
    assert status == 0, out + err
