"""``nalarc build``: app source -> build directory (generated modules, ir.json)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._errors import CompileError
from ._version import __version__
from .codegen import emit_module
from .frontend import (
    ModuleInfo,
    Package,
    find_package,
    is_package,
    load_modules,
    load_package,
    lower_program,
    write_source,
)
from .ir import Diagnostic, Program
from .ir._json import dumps
from .passes import PassContext, run_pipeline

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BuildResult:
    """What one build produced."""

    out_dir: Path
    app_module: str
    program: Program
    warnings: tuple[Diagnostic, ...]
    #: Wall-clock seconds the build took, and source lines it read.
    seconds: float
    lines: int

    def compiled_functions(self) -> dict[str, list[Diagnostic]]:
        """Each function nalarc compiles (it makes component calls, or a workflow or
        component reaches it), with the fallbacks (warnings) inside it."""
        return fallbacks_by_function(self.program, self.warnings)

    @property
    def workflows(self) -> tuple[str, ...]:
        for module in self.program.modules:
            if module.name == self.app_module:
                return module.workflows
        return ()


def fallbacks_by_function(program: Program, warnings: tuple[Diagnostic, ...]) -> dict[str, list[Diagnostic]]:
    """Compiled functions and the warnings whose position lies in them (innermost function wins)."""
    paths = {m.name: m.path for m in program.modules}
    functions = [
        f for f in program.functions().values()
        if f.in_scope or f.futures or f.is_async or f.is_region or f.kind in ("workflow", "tool", "agent_method")
    ]
    out: dict[str, list[Diagnostic]] = {f.qualname: [] for f in functions}
    for warning in warnings:
        inside = [
            f for f in functions
            if paths.get(f.qualname.partition(":")[0]) == warning.path and _contains(f.span, warning.span)
        ]
        if inside:
            innermost = max(inside, key=lambda f: (f.span[0], f.span[1]))
            out[innermost.qualname].append(warning)
    return out


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[:2] <= inner[:2] and inner[2:] <= outer[2:]


def default_build_dir(app_path: Path) -> Path:
    """``.nalarc/build/<app>``; for a package, its dotted name (``pkg``, ``pkg.sub``)."""
    name = find_package(app_path).name if is_package(app_path) else app_path.stem
    return Path(".nalarc") / "build" / name


def _diagnostic_error(d: Diagnostic) -> CompileError:
    path = Path(d.path)
    try:
        line = path.read_text(encoding="utf-8").splitlines()[d.span[0] - 1]
    except (OSError, IndexError):
        line = ""
    return CompileError(d.path, d.span[0], d.span[1], d.message, line)


class CompileErrors(CompileError):
    """Several compile errors; ``str()`` shows them all."""

    def __init__(self, errors: list[CompileError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.path, first.line, first.col, first.message, first.source_line)

    def render(self) -> str:
        return "\n".join(CompileError.render(e) for e in getattr(self, "errors", [self]))


def build(app_path: Path, out_dir: Path | None = None, *, strict: bool = False) -> BuildResult:
    """Compile ``app_path`` and the local modules it imports into ``out_dir``.

    ``app_path`` is an app file, or a package directory (one with
    ``__init__.py``): then every module of the package, subpackages included,
    is compiled in place (imports resolve against the directory containing
    the top-level package, so relative imports work) and the build directory
    gets the same tree, the package's other files copied as they are.

    Raises:
        CompileError: the app has errors (or, with ``strict``, fallbacks).
    """
    with _deep_recursion():
        return _build(Path(app_path), out_dir, strict)


@contextlib.contextmanager
def _deep_recursion(limit: int = 100_000) -> Iterator[None]:
    """LibCST walks trees recursively: a long implicit string concatenation
    (``pydoc_data/topics.py``) nests thousands of levels deep."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _build(app_path: Path, out_dir: Path | None, strict: bool) -> BuildResult:
    started = time.perf_counter()
    source = _Source.of(app_path)
    modules = source.load()
    program = lower_program(modules, source.app)
    ctx = PassContext(strict=strict, diagnostics=list(program.diagnostics))
    program = run_pipeline(program, ctx, {name: info.tree for name, info in modules.items()})
    program = program.with_changes(diagnostics=tuple(ctx.diagnostics))
    fatal = [d for d in ctx.diagnostics if d.severity == "error" or strict]
    if fatal:
        raise CompileErrors([_diagnostic_error(d) for d in fatal])
    out = Path(out_dir) if out_dir is not None else default_build_dir(app_path)
    data = source.data_files(out, modules)
    out.mkdir(parents=True, exist_ok=True)
    root = source.root
    for module in program.modules:
        info = modules[module.name]
        target = out / info.source.path.resolve().relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = info.source.text if info.verbatim else emit_module(info.wrapper, module, program, info.source.text)
        write_source(target, text, info.source.encoding)
    for file in data:
        target = out / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    (out / "ir.json").write_text(dumps(program), encoding="utf-8")
    manifest = {
        "nalarc": __version__,
        "app": source.app,
        "source": str(app_path.resolve()),
        "modules": sorted(modules),
        "workflows": list(_workflows(program, source.app)),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    lines = sum(info.source.text.count("\n") + 1 for info in modules.values())
    warnings = tuple(d for d in ctx.diagnostics if d.severity == "warning")
    return BuildResult(out, source.app, program, warnings, time.perf_counter() - started, lines)


@dataclass(frozen=True)
class _Source:
    """What ``nalarc build`` was given: one app file, or a package built in place."""

    #: The directory imports resolve against; the build directory mirrors it.
    root: Path
    #: Dotted name of the app module (or of the package).
    app: str
    app_path: Path
    package: Package | None = None

    @classmethod
    def of(cls, app_path: Path) -> _Source:
        if app_path.is_dir():
            package = find_package(app_path)
            return cls(package.root, package.name, app_path, package)
        return cls(app_path.resolve().parent, app_path.stem, app_path)

    def load(self) -> dict[str, ModuleInfo]:
        return load_package(self.package) if self.package is not None else load_modules(self.app_path)

    def data_files(self, out: Path, modules: dict[str, ModuleInfo]) -> list[Path]:
        """A package's files that are not compiled modules (data, templates, ``py.typed``).

        Byte-code caches are left out, and so is the build directory itself
        when it lies inside the package.
        """
        if self.package is None:
            return []
        compiled = {info.source.path.resolve() for info in modules.values()}
        base, out = self.app_path.resolve(), out.resolve()
        return sorted(
            file for file in base.rglob("*")
            if file.is_file() and file.resolve() not in compiled and file.suffix != ".pyc"
            and "__pycache__" not in file.relative_to(base).parts and not file.is_relative_to(out)
        )


def _workflows(program: Program, app: str) -> tuple[str, ...]:
    for module in program.modules:
        if module.name == app:
            return module.workflows
    return ()
