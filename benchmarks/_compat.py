"""The compatibility harness: real code nobody here wrote, built with nalarc.

Shared by ``benchmarks/build_compat.py`` (the full sweep) and the tests in
``tests/compat/`` (a sample in CI):

* :func:`stdlib_units` lists the running interpreter's pure-Python standard
  library as *units*: top-level modules, and packages (built in place);
* :func:`build_unit` copies one unit alone into a scratch directory, builds it
  with nalarc's real ``build()`` and checks every compiled module against its
  source byte for byte (code with no components must come out unchanged);
* :data:`PYPI` pins popular pure-Python packages and :func:`fetch_sdist`
  downloads and unpacks one sdist with pip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nalarc._build import CompileErrors, _deep_recursion, build
from nalarc._errors import CompileError
from nalarc.codegen import emit_module
from nalarc.frontend import find_package, lower_program
from nalarc.frontend._modules import ModuleInfo, ModuleLoader
from nalarc.passes import PassContext, run_pipeline

STDLIB = Path(sysconfig.get_paths()["stdlib"])

#: Top-level entries of the standard library directory that are not its
#: pure-Python modules, and why.
NOT_STDLIB_SOURCE = {
    "site-packages": "third-party packages installed into this interpreter, not the standard library",
    "lib-dynload": "C extension modules (.so): no Python source",
    "__pycache__": "byte-code caches",
}
#: CPython's own regression test suites (``--with-tests`` includes them).
TEST_SUITES = ("test", "ctypes/test", "distutils/tests", "idlelib/idle_test", "lib2to3/tests",
               "tkinter/test", "unittest/test")

#: built: compiled, byte-identical; changed: compiled, not byte-identical;
#: failed: a compile error; crashed: any other exception.
Outcome = Literal["built", "changed", "failed", "crashed"]


@dataclass(frozen=True)
class Unit:
    """One thing to build: a top-level module (a ``.py`` file) or a package directory."""

    name: str
    path: Path

    @property
    def kind(self) -> str:
        return "package" if self.path.is_dir() else "module"


@dataclass
class ModuleOutcome:
    """What happened to one module of a unit."""

    name: str
    outcome: Outcome
    #: First line of the error (``failed``/``crashed``), or the first changed line (``changed``).
    detail: str = ""


@dataclass
class UnitResult:
    unit: str
    kind: str
    outcome: Outcome
    modules: list[ModuleOutcome] = field(default_factory=list)
    lines: int = 0
    seconds: float = 0.0
    detail: str = ""


def stdlib_units(with_tests: bool = False) -> tuple[list[Unit], dict[str, str]]:
    """The standard library's top-level modules and packages, sorted, and what was skipped (and why).

    A ``.py`` file is a module; a directory with ``__init__.py`` a package
    (built in place, with its subpackages).  Skipped: see :data:`NOT_STDLIB_SOURCE`;
    the interpreter's build configuration (``config-*``: Makefile, ``config.c``
    and ``python-config.py``, a script that is never imported); directories
    without ``__init__.py`` and other files (data); CPython's test suites unless
    ``with_tests``; and, inside a unit, the few files CPython itself cannot
    compile (see :func:`copy_unit`).
    """
    units: list[Unit] = []
    skipped: dict[str, str] = {}
    for entry in sorted(STDLIB.iterdir(), key=lambda p: p.name):
        if entry.name in NOT_STDLIB_SOURCE:
            skipped[entry.name] = NOT_STDLIB_SOURCE[entry.name]
        elif entry.name.startswith("config-"):
            skipped[entry.name] = "the interpreter's build configuration (Makefile, config.c, python-config.py script)"
        elif entry.name == "test" and not with_tests:
            skipped[entry.name] = "CPython's regression test suite (--with-tests includes it)"
        elif entry.is_file() and entry.suffix == ".py":
            units.append(Unit(entry.stem, entry))
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            units.append(Unit(entry.name, entry))
        elif entry.is_dir() or entry.suffix != ".py":
            skipped[entry.name] = "not a module: a directory without __init__.py, or a data file"
    if not with_tests:
        for suite in TEST_SUITES[1:]:
            if (STDLIB / suite).is_dir():
                skipped[suite] = "CPython's regression tests of that package (--with-tests includes them)"
    return units, skipped


def _excluded_dirs(unit: Unit, with_tests: bool) -> set[Path]:
    if with_tests or unit.kind != "package":
        return set()
    return {STDLIB / s for s in TEST_SUITES if (STDLIB / s).is_relative_to(unit.path) and (STDLIB / s) != unit.path}


def not_valid_python(path: Path) -> str | None:
    """Why CPython would not import ``path`` (a deliberate syntax error in test data), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings of valid test code: not our business
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def copy_unit(unit: Unit, dest: Path, excluded: set[Path]) -> tuple[Path, list[str]]:
    """Copy ``unit`` alone into ``dest``; return the path to build and the files left out.

    Left out: byte-code caches, ``excluded`` directories, and ``.py`` files of
    (sub)packages that CPython itself cannot compile: they are not importable
    source (CPython's tests of its own syntax errors), and one of them would
    fail the whole package's build.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if unit.kind == "module":
        return Path(shutil.copy2(unit.path, dest / unit.path.name)), []
    left_out: list[str] = []
    target = dest / unit.path.name
    for source in sorted(unit.path.rglob("*")):
        relative = source.relative_to(unit.path)
        if "__pycache__" in relative.parts or any(source.is_relative_to(e) for e in excluded) or not source.is_file():
            continue
        if source.suffix == ".py" and (source.parent / "__init__.py").is_file():
            reason = not_valid_python(source)
            if reason is not None:
                left_out.append(f"{unit.name}/{relative}: {reason}")
                continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / relative)
    return target, left_out


def first_line(exc: BaseException, root: Path | None = None) -> str:
    """The error as one line: ``path:line:col: error: message`` for a compile error (path relative to ``root``)."""
    if isinstance(exc, CompileError):
        path = Path(exc.path)
        if root is not None and path.is_absolute() and path.is_relative_to(root.resolve()):
            path = path.relative_to(root.resolve())
        return f"{path}:{exc.line}:{exc.col + 1}: error: {exc.message}".splitlines()[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def error_class(line: str) -> str:
    """An error line with what varies between occurrences (paths, positions, quoted names) blanked."""
    line = re.sub(r"^\S+?:\d+:\d+: ", "", line)
    line = re.sub(r"'[^']*'", "'…'", line)
    line = re.sub(r"\b(def|class) \w+", r"\1 …", line)
    line = re.sub(r"no local module \S+", "no local module …", line)
    return re.sub(r"\b\d+\b", "N", line)


def _outcome_of(exc: BaseException) -> Outcome:
    # A CompileError is the compiler rejecting the code with a diagnostic;
    # anything else (an internal error, a RecursionError) is a crash.
    return "failed" if isinstance(exc, CompileError) else "crashed"


def build_unit(unit: Unit, work: Path, *, with_tests: bool = False, attribute: bool = True) -> UnitResult:
    """Copy ``unit`` alone under ``work``, then :func:`build_and_compare` it."""
    source, left_out = copy_unit(unit, work / "src", _excluded_dirs(unit, with_tests))
    result = build_and_compare(source, work / "out", attribute=attribute)
    result.unit = unit.name
    result.detail = "; ".join(d for d in (result.detail, _left_out(left_out)) if d)
    return result


def build_and_compare(path: Path, out: Path, *, attribute: bool = True) -> UnitResult:
    """Build ``path`` (a module file, or a package directory, in place) and compare every module with its source.

    When a package does not build, ``attribute`` compiles each of its modules
    on its own (in place, with the local modules it imports) to say which ones
    fail and why: one failing module stops the whole package's build.
    """
    package = path.is_dir()
    kind = "package" if package else "module"
    root = find_package(path).root if package else path.resolve().parent
    started = time.perf_counter()
    try:
        result = build(path, out)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        seconds = time.perf_counter() - started
        modules = _attribute(path) if attribute and package else []
        return UnitResult(path.stem, kind, _outcome_of(exc), modules, 0, seconds, first_line(exc, root))
    modules = [_compare(name, root, out) for name in sorted(m.name for m in result.program.modules)]
    changed = any(m.outcome == "changed" for m in modules)
    return UnitResult(result.app_module, kind, "changed" if changed else "built", modules, result.lines, result.seconds)


def _left_out(left_out: list[str]) -> str:
    return f"left out {len(left_out)} file(s) CPython cannot compile" if left_out else ""


def _module_path(root: Path, name: str) -> Path:
    base = root.joinpath(*name.split("."))
    return base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")


def _compare(name: str, root: Path, out: Path) -> ModuleOutcome:
    source = _module_path(root, name)
    compiled = out / source.relative_to(root)
    before, after = source.read_bytes(), compiled.read_bytes()
    if before == after:
        return ModuleOutcome(name, "built")
    old, new = before.decode("utf-8").splitlines(), after.decode("utf-8").splitlines()
    index = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    line = new[index] if index < len(new) else "<end of file>"
    return ModuleOutcome(name, "changed", f"line {index + 1}: {line.strip()[:120]}")


def _attribute(package_dir: Path) -> list[ModuleOutcome]:
    """Each module of the package compiled on its own, in place (nothing written)."""
    package = find_package(package_dir)
    outcomes = []
    for name, path in package.modules:
        try:
            compile_alone(package.root, name, path)
        except Exception as exc:  # noqa: BLE001
            outcomes.append(ModuleOutcome(name, _outcome_of(exc), first_line(exc, package.root)))
        else:
            outcomes.append(ModuleOutcome(name, "built"))
    return outcomes


class _AloneLoader(ModuleLoader):
    """Loads its entry modules only: their local imports are checked to resolve, not loaded."""

    def _local_imports(self, info: ModuleInfo) -> list[str]:
        super()._local_imports(info)
        return []


def compile_alone(root: Path, name: str, path: Path) -> None:
    """What ``build()`` does for one module of a package, minus writing files.

    The module is compiled in place (its imports resolve against ``root``) but
    on its own, so an error is always its own, never one of a module it imports.

    Raises what the build would raise.
    """
    with _deep_recursion():  # as build() does: LibCST recurses into long implicit concatenations
        _compile_alone(root, name, path)


def _compile_alone(root: Path, name: str, path: Path) -> None:
    modules = _AloneLoader(root, ((name, path),)).load()
    program = lower_program(modules, name)
    ctx = PassContext(strict=False, diagnostics=list(program.diagnostics))
    program = run_pipeline(program, ctx, {n: info.tree for n, info in modules.items()})
    fatal = [d for d in ctx.diagnostics if d.severity == "error"]
    if fatal:
        raise CompileErrors([CompileError(d.path, d.span[0], d.span[1], d.message) for d in fatal])
    for module in program.modules:
        emit_module(modules[module.name].wrapper, module, program, modules[module.name].source.text)


# --- PyPI -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sdist:
    """A pinned source distribution on PyPI, and where its importable code is inside it."""

    project: str
    version: str
    #: Importable top-level packages (directories) or modules (``.py`` files),
    #: relative to the sdist's root.
    code: tuple[str, ...]


#: Popular pure-Python packages (pinned): what the compatibility sweep builds.
PYPI = (
    Sdist("attrs", "24.2.0", ("src/attr", "src/attrs")),
    Sdist("packaging", "24.1", ("src/packaging",)),
    Sdist("more-itertools", "10.5.0", ("more_itertools",)),
    Sdist("toolz", "1.0.0", ("toolz", "tlz")),
    Sdist("python-dateutil", "2.9.0.post0", ("src/dateutil",)),
    Sdist("idna", "3.10", ("idna",)),
    Sdist("six", "1.16.0", ("six.py",)),
    Sdist("tomli", "2.0.2", ("src/tomli",)),
    Sdist("markupsafe", "2.1.5", ("src/markupsafe",)),  # jinja2's dependency; its C speedups stay unbuilt
    Sdist("jinja2", "3.1.4", ("src/jinja2",)),
    Sdist("chardet", "5.2.0", ("chardet",)),
)


class FetchError(Exception):
    """The sdist could not be downloaded (no network, PyPI unreachable)."""


def fetch_sdist(sdist: Sdist, cache: Path) -> Path:
    """Download (once) and unpack ``sdist`` under ``cache``; return its root directory.

    Raises:
        FetchError: pip could not download it.
    """
    root = cache / "src" / f"{sdist.project}-{sdist.version}"
    if (root / ".complete").is_file():
        return root
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = _find_archive(downloads, sdist)
    if archive is None:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
             "--retries", "2", "--timeout", "30", "-q", "-d", str(downloads), f"{sdist.project}=={sdist.version}"],
            capture_output=True, text=True, timeout=300,
        )
        archive = _find_archive(downloads, sdist)
        if done.returncode != 0 or archive is None:
            lines = [line for line in done.stderr.splitlines() if "WARNING: Location" not in line]
            raise FetchError(f"pip download {sdist.project}=={sdist.version} failed: {' / '.join(lines[-3:])}")
    if root.exists():
        shutil.rmtree(root)
    scratch = cache / "src" / f".unpack-{sdist.project}"
    if scratch.exists():
        shutil.rmtree(scratch)
    _unpack(archive, scratch)
    (top,) = list(scratch.iterdir())  # an sdist holds one directory, NAME-VERSION
    top.rename(root)
    scratch.rmdir()
    (root / ".complete").write_text("", encoding="utf-8")
    return root


def _find_archive(downloads: Path, sdist: Sdist) -> Path | None:
    wanted = {re.sub(r"[-_.]+", "_", sdist.project).lower() + "-" + sdist.version}
    for archive in sorted(downloads.iterdir()):
        stem = archive.name.removesuffix(".tar.gz").removesuffix(".zip")
        if stem != archive.name and re.sub(r"[-_.]+", "_", stem.rpartition("-")[0]).lower() + "-" + stem.rpartition("-")[2] in wanted:
            return archive
    return None


def _unpack(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
        return
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")


def build_sdist(root: Path, sdist: Sdist, out: Path) -> list[UnitResult]:
    """Build each of the sdist's top-level packages (in place) and modules into ``out``."""
    return [build_and_compare(root / code, out) for code in sdist.code]
