"""Code that declares no components compiles to a program that behaves identically.

Pure-Python standard library modules (``textwrap``, ``difflib`` and the ``json``
package: decoder, scanner, encoder) are copied out of the running interpreter,
compiled with nalarc's real build, and CPython's own unit tests for them are run
against the compiled copies.  Each test also checks that the tests really ran
the compiled code (the functions they call come from the build directory) and
that the compiler changed nothing at all (no components: nothing to rewrite).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import re
import shutil
import sys
import time
import types
import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest

from nalarc._build import BuildResult, build

RT_IMPORT = "from nalarc import runtime as _nalarc_rt"
MARK_PURE = re.compile(r"_nalarc_rt\.mark_pure\((\w+)\)")


def _stdlib_source(module: types.ModuleType) -> Path:
    path = inspect.getsourcefile(module)
    assert path is not None, module
    return Path(path)


def _test_module_available(name: str) -> None:
    """CPython's tests are optional in some distributions: skip, don't fail."""
    try:
        if importlib.util.find_spec(name) is None:
            raise ImportError(name)
    except ImportError:
        pytest.skip(f"CPython test module {name} is not installed with this interpreter")


def _check_only_expected_changes(original: Path, compiled: Path) -> list[str]:
    """Code that declares no components compiles to itself, byte for byte.

    Returns the names nalarc marked pure (none: with no components there is
    nothing to mark, and not even the runtime import is added).
    """
    before = original.read_text(encoding="utf-8")
    after = compiled.read_text(encoding="utf-8")
    if after != before:
        import difflib  # the interpreter's own, whatever sys.modules holds right now

        diff = "\n".join(
            difflib.unified_diff(before.splitlines(), after.splitlines(), str(original), str(compiled), lineterm="")
        )
        pytest.fail(f"compiler changed {original.name}:\n{diff}")
    assert RT_IMPORT not in after
    return MARK_PURE.findall(after)


def _assert_no_async(result: BuildResult) -> None:
    functions = result.program.functions()
    assert functions, "the build found no functions at all"
    asynchronous = sorted(q for q, f in functions.items() if f.is_async)
    assert not asynchronous, f"pure code compiled to async functions: {asynchronous}"
    assert not result.program.components(), "no components were declared"


@contextlib.contextmanager
def _compiled_on_path(build_dir: Path, prefixes: tuple[str, ...]) -> Iterator[None]:
    """Make ``import <prefix>`` find the compiled copies; restore everything after.

    Any module whose name is, or starts with, one of ``prefixes`` is dropped
    from ``sys.modules`` for the duration (and so are CPython's test modules,
    so they are imported fresh against the compiled copies).
    """

    def ours(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    saved_modules = dict(sys.modules)
    saved_path = list(sys.path)
    for name in list(sys.modules):
        if ours(name):
            del sys.modules[name]
    sys.path.insert(0, str(build_dir))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in list(sys.modules):
            if name not in saved_modules:
                del sys.modules[name]
        sys.modules.update(saved_modules)
        importlib.invalidate_caches()


def _run_suite(suite: unittest.TestSuite) -> tuple[unittest.TestResult, str, float]:
    stream = io.StringIO()
    runner = unittest.TextTestRunner(stream=stream, verbosity=1, buffer=True)
    started = time.perf_counter()
    result = runner.run(suite)
    return result, stream.getvalue(), time.perf_counter() - started


def _report(name: str, result: unittest.TestResult, output: str, seconds: float) -> str:
    problems = [*result.errors, *result.failures]
    details = "\n".join(f"--- {test}\n{trace}" for test, trace in problems)
    unexpected = "\n".join(f"--- unexpected success: {t}" for t in result.unexpectedSuccesses)
    return (
        f"{name}: ran {result.testsRun} tests in {seconds:.1f}s, "
        f"{len(result.failures)} failures, {len(result.errors)} errors, "
        f"{len(result.skipped)} skipped\n{details}{unexpected}\n{output[-4000:]}"
    )


def _assert_from(obj: object, build_dir: Path) -> None:
    code = getattr(obj, "__code__")
    filename = Path(code.co_filename).resolve()
    assert filename.is_relative_to(build_dir.resolve()), f"{obj!r} runs {filename}, not the compiled copy"


# --- textwrap -------------------------------------------------------------------


def test_textwrap_compiled_passes_cpython_tests(tmp_path: Path) -> None:
    import textwrap

    _test_module_available("test.test_textwrap")
    src_dir, out_dir = tmp_path / "src", tmp_path / "build"
    src_dir.mkdir()
    source = shutil.copy(_stdlib_source(textwrap), src_dir / "textwrap.py")
    result = build(Path(source), out_dir)
    assert [m.name for m in result.program.modules] == ["textwrap"]
    assert not result.warnings, result.warnings
    _assert_no_async(result)
    _check_only_expected_changes(Path(source), out_dir / "textwrap.py")

    with _compiled_on_path(out_dir, ("textwrap", "test.test_textwrap")):
        compiled = importlib.import_module("textwrap")
        tests = importlib.import_module("test.test_textwrap")
        assert tests.TextWrapper is compiled.TextWrapper
        for fn in (tests.TextWrapper.wrap, tests.TextWrapper._wrap_chunks, tests.wrap, tests.fill,
                   tests.dedent, tests.indent, tests.shorten):
            _assert_from(fn, out_dir)
        suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
        outcome, output, seconds = _run_suite(suite)

    report = _report("textwrap", outcome, output, seconds)
    print(report.splitlines()[0])
    assert outcome.wasSuccessful(), report
    assert outcome.testsRun >= 60, report


# --- difflib --------------------------------------------------------------------


def test_difflib_compiled_passes_cpython_tests(tmp_path: Path) -> None:
    import difflib

    _test_module_available("test.test_difflib")
    src_dir, out_dir = tmp_path / "src", tmp_path / "build"
    src_dir.mkdir()
    source = shutil.copy(_stdlib_source(difflib), src_dir / "difflib.py")
    result = build(Path(source), out_dir)
    assert [m.name for m in result.program.modules] == ["difflib"]
    assert not result.warnings, result.warnings
    _assert_no_async(result)
    _check_only_expected_changes(Path(source), out_dir / "difflib.py")

    with _compiled_on_path(out_dir, ("difflib", "test.test_difflib")):
        compiled = importlib.import_module("difflib")
        tests = importlib.import_module("test.test_difflib")
        assert tests.difflib is compiled
        for fn in (compiled.SequenceMatcher.get_matching_blocks, compiled.SequenceMatcher.find_longest_match,
                   compiled.SequenceMatcher.ratio, compiled.Differ.compare, compiled.HtmlDiff.make_file,
                   compiled.unified_diff, compiled.context_diff, compiled.ndiff, compiled.restore,
                   compiled.get_close_matches, compiled.diff_bytes, compiled._calculate_ratio):
            _assert_from(fn, out_dir)
        # Its load_tests adds the doctests of the (compiled) difflib module.
        suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
        outcome, output, seconds = _run_suite(suite)

    report = _report("difflib", outcome, output, seconds)
    print(report.splitlines()[0])
    assert outcome.wasSuccessful(), report
    assert outcome.testsRun >= 50, report


# --- json: decoder, scanner, encoder --------------------------------------------

JSON_FILES = ("__init__.py", "decoder.py", "scanner.py", "encoder.py")


def test_json_compiled_passes_cpython_tests(tmp_path: Path) -> None:
    import json

    _test_module_available("test.test_json")
    src_dir, out_dir = tmp_path / "src", tmp_path / "build"
    package = src_dir / "json"
    package.mkdir(parents=True)
    stdlib_json = _stdlib_source(json).parent
    for name in JSON_FILES:
        shutil.copy(stdlib_json / name, package / name)
    # The json package is a local package of a one-line app, so ``build()``
    # compiles it whole: relative (``from .decoder``) and absolute
    # (``from json import scanner``) imports both resolve inside the build.
    (src_dir / "jsonapp.py").write_text("import json\n", encoding="utf-8")
    result = build(src_dir / "jsonapp.py", out_dir)
    assert sorted(m.name for m in result.program.modules) == [
        "json", "json.decoder", "json.encoder", "json.scanner", "jsonapp"
    ]
    assert not result.warnings, result.warnings
    _assert_no_async(result)
    for name in JSON_FILES:
        _check_only_expected_changes(package / name, out_dir / "json" / name)

    with _compiled_on_path(out_dir, ("json", "_json", "test.test_json")):
        compiled = importlib.import_module("json")
        assert compiled.__file__ is not None
        assert Path(compiled.__file__).resolve() == (out_dir / "json" / "__init__.py").resolve()
        # test.test_json imports ``json`` and builds ``pyjson`` (``_json``
        # blocked: the compiled pure-Python decoder/scanner/encoder) and
        # ``cjson`` (the compiled package over the C accelerator) with
        # import_fresh_module; both now come from the build directory.
        tests = importlib.import_module("test.test_json")
        pyjson, cjson = tests.pyjson, tests.cjson
        assert tests.json is compiled
        for module in (pyjson, cjson):
            assert module is not None
            for sub in ("decoder", "scanner", "encoder"):
                file = Path(getattr(module, sub).__file__).resolve()
                assert file == (out_dir / "json" / f"{sub}.py").resolve(), file
        # The pure-Python flavour really runs the compiled scanner/decoder/encoder.
        assert pyjson.decoder.scanstring is pyjson.decoder.py_scanstring
        assert pyjson.scanner.make_scanner is pyjson.scanner.py_make_scanner
        assert pyjson.encoder.c_make_encoder is None
        for fn in (pyjson.decoder.py_scanstring, pyjson.decoder.JSONObject, pyjson.decoder.JSONArray,
                   pyjson.decoder.JSONDecoder.decode, pyjson.decoder.JSONDecoder.raw_decode,
                   pyjson.scanner.py_make_scanner, pyjson.encoder.JSONEncoder.encode,
                   pyjson.encoder._make_iterencode, pyjson.encoder.py_encode_basestring_ascii,
                   pyjson.loads, pyjson.dumps, tests.PyTest.loads, tests.PyTest.dumps):
            _assert_from(fn, out_dir)
        scanner = pyjson.decoder.JSONDecoder().scan_once
        _assert_from(scanner, out_dir)  # the closure py_make_scanner returns
        suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
        outcome, output, seconds = _run_suite(suite)

    report = _report("json", outcome, output, seconds)
    print(report.splitlines()[0])
    assert outcome.wasSuccessful(), report
    assert outcome.testsRun >= 160, report
