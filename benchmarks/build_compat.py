"""Does nalarc build real Python it has never seen?  The standard library and PyPI packages.

Run: ``python benchmarks/build_compat.py [--with-tests] [--no-pypi] [--only NAME ...] [--out report.json]``

**Standard library.**  Every pure-Python module and package of the running
interpreter's standard library is copied alone into a scratch directory and
built with nalarc's real ``build()``: a top-level ``.py`` file as an app, a
package as a package *in place* (``nalarc build pkg/``: the root is the
directory containing it, so its relative imports resolve; every module of it
and of its subpackages is built).  None of this code declares a component, so
every compiled module must be byte-identical to its source: a module that
builds but differs is counted as ``changed``.  Outcomes per module:

* ``built``: compiled, byte-identical;
* ``changed``: compiled, but not byte-identical (a bug: there is nothing to rewrite);
* ``failed``: nalarc rejected valid Python with a compile error (``path:line:col: error:``);
* ``crashed``: any other exception (an internal error, a ``RecursionError``).

One failing module stops its whole package's build, so when a package fails each of
its modules is compiled again on its own (in place: its imports resolve against the
package's root and are checked, but are not compiled with it) to say which ones fail
and why; ``--no-attribution`` skips that, and counts every module of a failed package
with the package's error.

Skipped, and why (the JSON lists them under ``skipped``):

* ``site-packages`` (third-party packages), ``lib-dynload`` (C extension modules: no
  Python source), ``__pycache__`` (byte code), ``config-*`` (the interpreter's build
  configuration: Makefile, ``config.c``, the ``python-config.py`` script);
* top-level directories without ``__init__.py`` and other files: data, not modules
  (inside a package, such directories are copied as data by the build);
* CPython's regression test suites (``test`` and ``ctypes/test``, ``distutils/tests``,
  ``idlelib/idle_test``, ``lib2to3/tests``, ``tkinter/test``, ``unittest/test``): they are
  the interpreter's tests, not library modules; ``--with-tests`` builds them too;
* inside a package, the ``.py`` files CPython itself cannot compile (deliberate syntax
  errors: ``test/badsyntax_*.py`` and the like; only with ``--with-tests``): they are
  not importable source.

**PyPI.**  Each package of ``_compat.PYPI`` (pinned versions) is downloaded as an sdist
with ``pip download --no-deps --no-binary :all:`` (cached under ``--cache``) and its
top-level packages are built in place, with the same outcomes.  Without network the
pass is reported as skipped.

Throughput is source lines read per second of ``build()`` over the units that built.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import report
from _compat import PYPI, FetchError, ModuleOutcome, UnitResult, build_sdist, build_unit, error_class, fetch_sdist, stdlib_units
from nalarc.frontend import find_package

OUTCOMES = ("built", "changed", "failed", "crashed")


def module_outcomes(result: UnitResult, work: Path) -> list[ModuleOutcome]:
    """Per-module outcomes of a unit (a failed package without attribution: each module 'failed' with the package's error)."""
    if result.modules:
        return result.modules
    if result.kind == "package":
        names = [name for name, _ in find_package(work / "src" / result.unit).modules]
        return [ModuleOutcome(name, result.outcome, result.detail) for name in names]
    return [ModuleOutcome(result.unit, result.outcome, result.detail)]


def summarize(label: str, results: list[UnitResult], outcomes: list[ModuleOutcome]) -> dict[str, Any]:
    built = [r for r in results if r.outcome in ("built", "changed")]
    lines, seconds = sum(r.lines for r in built), sum(r.seconds for r in built)
    counts = Counter[str](m.outcome for m in outcomes)
    unit_counts = Counter[str](r.outcome for r in results)
    return {
        "what": label,
        "units": len(results),
        "units built": unit_counts["built"],
        "modules": len(outcomes),
        **{o: counts[o] for o in OUTCOMES},
        "lines built": lines,
        "build s": round(seconds, 2),
        "lines/s": round(lines / seconds) if seconds else 0,
    }


def failure_groups(outcomes: list[tuple[str, ModuleOutcome]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[tuple[str, ModuleOutcome]]] = defaultdict(list)
    for where, m in outcomes:
        if m.outcome != "built":
            groups[(m.outcome, error_class(m.detail))].append((where, m))
    rows = []
    for (outcome, cls), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        rows.append({
            "outcome": outcome, "error": cls, "modules": len(members),
            "example": members[0][1].detail, "which": sorted(f"{w}:{m.name}" for w, m in members),
        })
    return rows


def run_stdlib(args: argparse.Namespace, scratch: Path) -> tuple[list[UnitResult], list[ModuleOutcome], dict[str, str]]:
    units, skipped = stdlib_units(with_tests=args.with_tests)
    if args.only:
        units = [u for u in units if u.name in args.only]
    results: list[UnitResult] = []
    outcomes: list[ModuleOutcome] = []
    console = Console(stderr=True)
    for index, unit in enumerate(units):
        work = scratch / "stdlib" / unit.name
        result = build_unit(unit, work, with_tests=args.with_tests, attribute=not args.no_attribution)
        results.append(result)
        outcomes += module_outcomes(result, work)
        if args.verbose or result.outcome != "built":
            console.print(f"[{index + 1}/{len(units)}] {unit.name}: {result.outcome} {result.detail}", markup=False)
    return results, outcomes, skipped


def run_pypi(cache: Path, scratch: Path) -> tuple[list[UnitResult], list[tuple[str, ModuleOutcome]], dict[str, str]]:
    results: list[UnitResult] = []
    outcomes: list[tuple[str, ModuleOutcome]] = []
    skipped: dict[str, str] = {}
    for sdist in PYPI:
        label = f"{sdist.project}=={sdist.version}"
        try:
            root = fetch_sdist(sdist, cache)
        except FetchError as exc:
            skipped[label] = str(exc)
            continue
        for result in build_sdist(root, sdist, scratch / "pypi" / sdist.project):
            results.append(result)
            if result.modules:
                outcomes += [(label, m) for m in result.modules]
            else:
                outcomes.append((label, ModuleOutcome(result.unit, result.outcome, result.detail)))
    return results, outcomes, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-tests", action="store_true", help="also build CPython's regression test suites")
    parser.add_argument("--no-pypi", action="store_true", help="skip the PyPI packages")
    parser.add_argument("--no-attribution", action="store_true", help="do not rebuild the modules of a failed package one by one")
    parser.add_argument("--only", nargs="*", help="only these top-level stdlib names")
    parser.add_argument("--cache", type=Path, default=Path(".nalarc") / "compat-cache", help="where sdists are kept")
    parser.add_argument("--verbose", action="store_true", help="print every unit, not only the ones that did not build")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nalarc-compat-") as tmp:
        scratch = Path(tmp)
        std_results, std_outcomes, skipped = run_stdlib(args, scratch)
        rows = [summarize("stdlib", std_results, std_outcomes)]
        all_outcomes = [("stdlib", m) for m in std_outcomes]
        pypi_skipped: dict[str, str] = {}
        pypi_results: list[UnitResult] = []
        if not args.no_pypi:
            pypi_results, pypi_outcomes, pypi_skipped = run_pypi(args.cache, scratch)
            rows.append(summarize("PyPI", pypi_results, [m for _, m in pypi_outcomes]))
            all_outcomes += pypi_outcomes
    groups = failure_groups(all_outcomes)
    _print_groups(groups)
    columns = ["what", "units", "units built", "modules", *OUTCOMES, "lines built", "build s", "lines/s"]
    report("nalarc build on code nobody here wrote", rows, columns, args.out, {
        "wall s": round(time.perf_counter() - started, 1),
        "with tests": args.with_tests,
        "failures": groups,
        "skipped": skipped,
        "pypi skipped": pypi_skipped,
        "units": [_unit_json(r) for r in (*std_results, *pypi_results)],
    })


def _unit_json(result: UnitResult) -> dict[str, Any]:
    return {
        "unit": result.unit, "kind": result.kind, "outcome": result.outcome, "lines": result.lines,
        "seconds": round(result.seconds, 3), "detail": result.detail,
        "modules": {m.name: m.outcome for m in result.modules},
    }


def _print_groups(groups: list[dict[str, Any]]) -> None:
    table = Table(title="modules that did not build, by error")
    for column in ("outcome", "modules", "error", "example module"):
        table.add_column(column, justify="right" if column == "modules" else "left", overflow="fold")
    for group in groups:
        table.add_row(group["outcome"], str(group["modules"]), group["error"][:140], group["which"][0])
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
