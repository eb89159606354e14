"""Popular pure-Python PyPI packages build, byte-identical, and pass their own tests compiled.

For each pinned package of ``benchmarks/_compat.py``'s ``PYPI`` the sdist is
downloaded with ``pip download --no-deps --no-binary :all:`` (kept in
pytest's cache directory) and each of its top-level packages is built in
place with nalarc's real ``build()``.  No package declares a component, so
every module must come out byte-identical to its source.

Then the package's own test suite runs in a subprocess against the compiled
copy: the tests are copied out of the sdist on their own (so the sdist's
source tree is not importable), the build directory is first on
``PYTHONPATH``, and a small pytest plugin records where every module of the
package was imported from, which must be the build directory (the same
packages are installed in this virtual environment; they must not be what
the tests ran).  A test that fails against the *plain* package here too is
left out, with the reason (and so is chardet's second pass over its corpus,
to save time).

Known compiler bugs are strict xfails naming the bug class: when the fix
lands the case goes red (XPASS) and its marker must be removed.  Without
network the downloads fail and the tests are skipped, saying so.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from compat_support import harness

from nalarc._build import BuildResult, build
from nalarc.frontend import find_package

PYPI = {sdist.project: sdist for sdist in harness.PYPI}

#: Why a package does not build yet, and the exceptions that says so (none today).
KNOWN: dict[str, tuple[tuple[str, ...], tuple[type[BaseException], ...]]] = {}

#: Where pip's error says the network, not the package, is the problem.
NETWORK_TROUBLE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                   "Name or service not known", "Network is unreachable", "ConnectTimeoutError", "Read timed out",
                   "ProxyError", "SSLError", "Connection refused")


@dataclass(frozen=True)
class Suite:
    """How to run a package's own tests against its compiled copy."""

    #: Paths in the sdist copied into the suite's directory (tests, their data, conftest.py).
    copy: tuple[str, ...]
    #: What pytest runs, relative to the suite's directory (``@build`` = the build directory).
    args: tuple[str, ...]
    #: At least this many tests pass (they all pass, a few are skipped here).
    min_passed: int
    #: Tests left out (they fail against the plain package here too, or only repeat others): node id -> why.
    leave_out: dict[str, str] = field(default_factory=dict)
    #: Other PyPI projects the tests import (their compiled copies go on the path too).
    needs: tuple[str, ...] = ()


SUITES = {
    "more-itertools": Suite(("tests",), ("tests",), 600),
    "idna": Suite(("tests",), ("tests",), 30),
    "chardet": Suite(("test.py", "tests"), ("test.py",), 370, {
        "test.py::test_detect_all_and_detect_one_should_agree":
            "hypothesis finds bytes on which detect() and detect_all() disagree on plain chardet 5.2.0 as well",
        "test.py::test_encoding_detection_rename_legacy":
            "detects the same ~375 files as test_encoding_detection again, only under legacy names: half the time",
    }),
    "markupsafe": Suite(("tests",), ("tests",), 35),  # its C speedups are not built: those cases skip
    "six": Suite(("test_six.py",), ("test_six.py",), 190, {
        "test_six.py::test_move_items[dbm_ndbm]": "this interpreter has no _dbm module (plain six fails it too)",
    }),
    "toolz": Suite((), ("@build/toolz/tests",), 170),  # the tests are a subpackage: compiled with toolz
    "packaging": Suite(("tests",), ("tests",), 20000),
    "attrs": Suite(("tests", "conftest.py"), ("tests",), 1200, {
        "tests/test_converters.py::TestPipe::test_wrapped_annotation":
            "fails on plain attrs 24.2.0 with this Python as well",
    }),
    "python-dateutil": Suite(("tests",), ("tests",), 1500, needs=("six",)),
    "jinja2": Suite(("tests",), ("tests",), 800, needs=("markupsafe",)),
}

PROBE = '''
"""Records where the package under test was imported from, and the test outcomes."""
import json, os, sys

_counts = {}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        key = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _counts[key] = _counts.get(key, 0) + 1


def pytest_sessionfinish(session, exitstatus):
    prefixes = os.environ["NALARC_PROBE_MODULES"].split(",")
    # Only modules under their own name: six.moves.configparser is the stdlib's configparser.
    loaded = {
        name: getattr(module, "__file__", None)
        for name, module in list(sys.modules.items())
        if any(name == p or name.startswith(p + ".") for p in prefixes) and getattr(module, "__name__", None) == name
    }
    with open(os.environ["NALARC_PROBE_OUT"], "w", encoding="utf-8") as out:
        json.dump({"loaded": loaded, "counts": _counts, "exitstatus": int(exitstatus)}, out)
'''


def _known(project: str) -> list[pytest.MarkDecorator]:
    if project not in KNOWN:
        return []
    reasons, raises = KNOWN[project]
    return [pytest.mark.xfail(strict=True, reason="; ".join(reasons), raises=raises)]


def _params(projects: list[str]) -> list[object]:
    return [pytest.param(p, marks=_known(p), id=p) for p in projects]


@pytest.fixture(scope="session")
def sdists(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every pinned sdist, downloaded once into pytest's cache and unpacked; skip without network."""
    store = getattr(request.config, "cache", None)  # none with -p no:cacheprovider: then this session's tmp
    cache = Path(store.mkdir("nalarc-compat-sdists")) if store is not None else tmp_path_factory.mktemp("sdists")
    roots: dict[str, Path] = {}
    for project, sdist in PYPI.items():
        try:
            roots[project] = harness.fetch_sdist(sdist, cache)
        except harness.FetchError as exc:
            if any(marker in str(exc) for marker in NETWORK_TROUBLE):
                pytest.skip(f"no network to download the sdists from PyPI: {exc}")
            raise
    return roots


class _Builds:
    """Each project built once per session (its build error kept, and raised again)."""

    def __init__(self, base: Path, sdists: dict[str, Path]) -> None:
        self.base, self.sdists = base, sdists
        self.done: dict[str, tuple[Path, list[BuildResult]] | BaseException] = {}

    def get(self, project: str) -> tuple[Path, list[BuildResult]]:
        if project not in self.done:
            out = self.base / project
            try:
                self.done[project] = (out, [build(self.sdists[project] / code, out) for code in PYPI[project].code])
            except Exception as exc:  # noqa: BLE001 - raised again by every test that needs it
                self.done[project] = exc
        done = self.done[project]
        if isinstance(done, BaseException):
            raise done
        return done


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, sdists: dict[str, Path]) -> _Builds:
    return _Builds(tmp_path_factory.mktemp("pypi-builds"), sdists)


def test_ten_popular_packages_are_pinned() -> None:
    assert len(PYPI) >= 10
    for sdist in PYPI.values():
        assert sdist.version[0].isdigit() and sdist.code, sdist
    assert len([p for p in SUITES if p not in KNOWN]) >= 3  # test suites that pass today


@pytest.mark.parametrize("project", _params(list(PYPI)))
def test_package_builds_byte_identical(project: str, sdists: dict[str, Path], builds: _Builds) -> None:
    out, results = builds.get(project)
    root = sdists[project]
    checked = 0
    for code, result in zip(PYPI[project].code, results):
        assert not result.program.components()
        path = root / code
        base = find_package(path).root if path.is_dir() else path.parent
        built = {m.name for m in result.program.modules}
        if path.is_dir():
            every = {name for name, _ in find_package(path).modules}
            assert every <= built, f"modules of {code} not built: {sorted(every - built)}"
        for name in sorted(built):
            source = base.joinpath(*name.split("."))
            source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
            _assert_identical(source, out / source.relative_to(base))
            checked += 1
    assert checked >= 1


def _assert_identical(source: Path, compiled: Path) -> None:
    before, after = source.read_bytes(), compiled.read_bytes()
    if before != after:
        diff = difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(),
                                    str(source), str(compiled), lineterm="")
        raise AssertionError("the compiler changed a module without components:\n" + "\n".join(list(diff)[:40]))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("project", _params(list(SUITES)))
def test_own_test_suite_passes_against_the_compiled_copy(
    project: str, sdists: dict[str, Path], builds: _Builds, tmp_path: Path
) -> None:
    suite = SUITES[project]
    out, _ = builds.get(project)
    path = [out] + [builds.get(dep)[0] for dep in suite.needs]
    root = sdists[project]
    work = tmp_path / "suite"
    work.mkdir()
    for item in suite.copy:
        source = root / item
        if source.is_dir():
            shutil.copytree(source, work / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, work / item)
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "nalarc_compat_probe.py").write_text(textwrap.dedent(PROBE), encoding="utf-8")
    prefixes = _top_level_names(root, project)
    record = tmp_path / "probe.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in [*path, tmp_path / "probe"]),
        "NALARC_PROBE_MODULES": ",".join(prefixes),
        "NALARC_PROBE_OUT": str(record),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTEST_ADDOPTS", None)
    args = [str(out / a.removeprefix("@build/")) if a.startswith("@build/") else a for a in suite.args]
    deselect = [f"--deselect={node}" for node in suite.leave_out]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "nalarc_compat_probe",
         "-o", "addopts=", *deselect, *args],
        capture_output=True, text=True, env=env, cwd=work, timeout=540,
    )
    tail = (done.stdout[-3000:] + done.stderr[-2000:]).strip()
    assert record.is_file(), f"pytest did not finish ({done.returncode}):\n{tail}"
    probe = json.loads(record.read_text(encoding="utf-8"))
    _assert_ran_the_compiled_copy(probe["loaded"], prefixes, path)
    counts = probe["counts"]
    assert done.returncode == 0, f"{project}'s tests failed against the compiled copy: {counts}\n{tail}"
    assert counts.get("failed", 0) == 0, counts
    assert counts.get("passed", 0) >= suite.min_passed, (counts, tail)
    print(f"{project}: {counts} against {out}")


def _top_level_names(root: Path, project: str) -> list[str]:
    return [Path(code).stem if code.endswith(".py") else Path(code).name for code in PYPI[project].code]


def _assert_ran_the_compiled_copy(loaded: dict[str, str | None], prefixes: list[str], path: list[Path]) -> None:
    for prefix in prefixes:
        assert prefix in loaded, f"the tests never imported {prefix}"
    files = {name: Path(file).resolve() for name, file in loaded.items() if file is not None}
    # six.moves and its like are lazy module objects with no file; every real module must be compiled.
    assert len(files) >= len(prefixes)
    builds = [p.resolve() for p in path]
    stray = {name: str(file) for name, file in files.items() if not any(file.is_relative_to(b) for b in builds)}
    assert not stray, f"modules imported from outside the build: {stray}"
