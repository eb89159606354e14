"""A wide sample of the standard library builds, and comes out byte-identical.

Each case copies one top-level module, or one package (with its subpackages;
CPython's own test subpackages left out), alone into a scratch directory and
builds it with nalarc's real ``build()``; packages are built in place
(``nalarc build pkg/``) so their relative imports resolve, and ``xml.etree``
is built as a subpackage of ``xml``.  None of this code declares a
component, so every module the build compiled must be byte-identical to its
source: the compiler has nothing to rewrite.

The whole standard library is swept by ``benchmarks/build_compat.py``; this
sample is what CI runs.  Modules that do not build yet because of known
compiler bugs would be strict xfails naming the bug class (none today): when a fix lands the
case goes red (XPASS) and its marker must be removed.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from compat_support import harness

from nalarc._build import build
from nalarc.frontend import find_package

STDLIB: Path = harness.STDLIB

#: Top-level modules, and packages (a name with a dot is a subpackage).
SAMPLE = [
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "codecs", "copy", "dataclasses", "datetime",
    "decimal", "difflib", "dis", "enum", "fnmatch", "fractions", "getopt", "gettext", "glob", "heapq", "hmac",
    "ipaddress", "keyword", "linecache", "locale", "numbers", "pathlib", "pickle", "pprint", "queue", "random",
    "reprlib", "selectors", "shlex", "socket", "statistics", "string", "textwrap", "tokenize",
    "traceback", "typing", "uuid", "warnings", "bdb",
    # redefinitions (@property + @x.setter, typing.overload, a def in both branches of an if)
    "configparser", "csv", "tarfile", "threading", "weakref", "zipfile",
    # imports only some platforms have (winreg, nt, _winapi, msvcrt, java.lang), guarded by a check
    "os", "platform", "subprocess",
    # a huge implicitly concatenated string (LibCST recurses)
    "pydoc_data",
    # packages, built in place
    "collections", "concurrent", "email", "json", "logging", "multiprocessing", "re", "urllib",
    # once known failures: a nested function defined twice in one body; async def
    "functools", "inspect", "operator", "shutil", "tempfile", "_pyio", "importlib", "xml.etree",
    "contextlib", "types", "_collections_abc", "asyncio", "unittest",
    # LibCST drops the space in ``except X :`` (LibCST #1457): a module with nothing to
    # rewrite is written back as its own text
    "webbrowser",
]
#: Modules the sample must include (the hard cases of issue 11).
HARD = {"functools", "inspect", "logging", "threading", "configparser", "csv", "operator", "typing",
        "dataclasses", "asyncio", "email", "json", "xml.etree", "importlib", "collections", "enum",
        "argparse", "os", "shutil", "platform", "multiprocessing"}
#: CPython's regression tests inside packages are not part of the sample.
TEST_SUBPACKAGES = {"test", "tests", "idle_test"}


def _name(param: object) -> str:
    return param if isinstance(param, str) else param.values[0]  # type: ignore[attr-defined]


def _stdlib_path(name: str) -> Path:
    base = STDLIB.joinpath(*name.split("."))
    return base if base.is_dir() else base.with_suffix(".py")


def _copy(name: str, dest: Path) -> Path:
    """Copy the top-level unit of ``name`` alone into ``dest``; return the path to build."""
    top = name.partition(".")[0]
    source = _stdlib_path(top)
    if source.is_file():
        return Path(shutil.copy2(source, dest / source.name))
    shutil.copytree(source, dest / top, ignore=_ignored)
    return dest.joinpath(*name.split("."))


def _ignored(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or (n in TEST_SUBPACKAGES and Path(directory, n, "__init__.py").is_file())}


def _sample_modules(name: str) -> list[str]:
    path = _stdlib_path(name)
    if path.is_file():
        return [name]
    return [m for m, file in find_package(path).modules
            if not TEST_SUBPACKAGES & set(file.relative_to(STDLIB).parts[:-1])]


def test_the_sample_is_wide_and_has_the_hard_cases() -> None:
    names = [_name(p) for p in SAMPLE]
    assert len(names) == len(set(names))
    assert HARD <= set(names), HARD - set(names)
    modules = [m for n in names for m in _sample_modules(n)]
    assert len(modules) >= 200, len(modules)


@pytest.mark.parametrize("name", SAMPLE)
def test_stdlib_builds_byte_identical(name: str, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    target = _copy(name, src)
    result = build(target, out)
    assert not result.program.components()
    assert result.app_module == name
    root = src
    built = sorted(m.name for m in result.program.modules)
    # Every module of the package is built, imported or not.
    assert set(_sample_modules(name)) <= set(built)
    for module in built:
        source = root.joinpath(*module.split("."))
        source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
        compiled = out / source.relative_to(root)
        before, after = source.read_bytes(), compiled.read_bytes()
        if before != after:
            diff = "\n".join(list(difflib.unified_diff(
                before.decode().splitlines(), after.decode().splitlines(), str(source), str(compiled), lineterm=""))[:40])
            raise AssertionError(f"the compiler changed {module}:\n{diff}")
