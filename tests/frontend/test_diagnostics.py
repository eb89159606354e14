"""Malformed or misused input gives a clear diagnostic and exit status 1.

Every case writes a tiny app into ``tmp_path`` and runs the real CLI in a
subprocess.  A compile error must look like a compiler's::

    /path/app.py:11:22: error: tool 'search' has no parameter 'limt' ...
        return search(q, limt=2)
                         ^

that is: the first stderr line is ``<path>:<line>:<col>: error: <message>``
(1-based column of the offending token), the message names the problem, the
next two lines are the source line and a caret under that column, and no
Python traceback appears anywhere.  Other CLI errors (bad ``--input``, an
unknown workflow) are one line, ``error: ...``.

The subprocess gets no ``COLUMNS`` variable, like a CI job or ``2> log``:
diagnostics must not depend on the terminal's width.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path


def _cli() -> list[str]:
    if importlib.util.find_spec("nalarc.__main__") is not None:
        return [sys.executable, "-m", "nalarc"]
    return [str(Path(sys.executable).parent / "nalarc")]


CLI = _cli()
ENV = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "FORCE_COLOR"}}
ENV["NO_COLOR"] = "1"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def nalarc(*args: str, cwd: Path) -> Result:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=120
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write_app(tmp_path: Path, source: str, name: str = "app.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


def locate(path: Path, line_has: str, token: str) -> tuple[int, int]:
    """1-based (line, column) of ``token`` on the first line containing ``line_has``."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line_has in text:
            assert token in text, f"test bug: {token!r} not on line {number}"
            start = text.find(token, text.index(line_has))
            return number, (start if start >= 0 else text.index(token)) + 1
    raise AssertionError(f"test bug: no line contains {line_has!r}")


def no_traceback(result: Result) -> list[str]:
    problems = []
    for stream, text in (("stderr", result.stderr), ("stdout", result.stdout)):
        if "Traceback" in text:
            problems.append(f"a Python traceback on {stream}")
    return problems


def check_diagnostic(
    result: Result,
    path: Path,
    line: int,
    col: int,
    must_name: tuple[str, ...],
    *,
    source: bool = True,
) -> str:
    """Assert the compiler-style diagnostic; returns the message.

    Collects every problem before failing, so one run shows all that is wrong.
    """
    problems = no_traceback(result)
    if result.returncode != 1:
        problems.append(f"exit status {result.returncode}, expected 1")
    lines = result.stderr.splitlines()
    first = lines[0] if lines else ""
    head = re.compile(rf"^{re.escape(str(path))}:(\d+):(\d+): error: (.*)$")
    match = head.match(first)
    message = ""
    if match is None:
        problems.append(f"first stderr line is not '{path}:<line>:<col>: error: <message>': {first!r}")
    else:
        got_line, got_col, message = int(match[1]), int(match[2]), match[3]
        if (got_line, got_col) != (line, col):
            problems.append(f"reported {got_line}:{got_col}, expected {line}:{col}")
        for word in must_name:
            if word.lower() not in message.lower():
                problems.append(f"message {message!r} does not name {word!r}")
    if source:
        source_line = path.read_text(encoding="utf-8").splitlines()[line - 1].rstrip()
        shown = lines[1] if len(lines) > 1 else ""
        caret = lines[2] if len(lines) > 2 else ""
        prefix = shown[: len(shown) - len(source_line)]
        if not shown.endswith(source_line) or prefix.strip():
            problems.append(f"second stderr line is not source line {line} ({source_line!r}): {shown!r}")
        elif not re.fullmatch(r"\s*\^[\^~]*\s*", caret):
            problems.append(f"third stderr line is not a caret line: {caret!r}")
        elif caret.index("^") != len(prefix) + col - 1:
            at = caret.index("^") - len(prefix) + 1
            problems.append(f"caret sits under column {at}, expected {col}")
    assert not problems, "\n".join(["diagnostic problems:", *problems, "stderr was:", result.stderr])
    return message


# -- nalarc build --------------------------------------------------------------------


def test_syntax_error(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool
        def search(q):
            return q


        @nalarc.workflow
        def main(q):
            total = search(q) +* 2
            return total
        """,
    )
    line, col = locate(app, "total = search(q) +* 2", "*")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("syntax",))


def test_tool_called_with_unknown_keyword(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool
        def search(query, limit=3):
            return [query] * limit


        @nalarc.workflow
        def main(q):
            return search(q, limt=2)
        """,
    )
    line, col = locate(app, "search(q, limt=2)", "limt")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("search", "limt"))


def test_agent_method_called_with_unknown_keyword(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.agent
        class Writer:
            def write(self, topic, tone="plain"):
                return f"{tone}: {topic}"


        @nalarc.workflow
        def main(q):
            w = Writer()
            return w.write(q, style="bold")
        """,
    )
    line, col = locate(app, "w.write(q, style", "style")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("write", "style"))


def test_managed_state_on_batchable_agent(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.agent(batchable=True)
        class Summarizer:
            history = nalarc.ManagedList()

            def run(self, text):
                self.history.append(text)
                return text


        @nalarc.workflow
        def main(q):
            return Summarizer().run(q)
        """,
    )
    # The conflict is the class as a whole: point at its ``class`` statement.
    line, col = locate(app, "class Summarizer", "class")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("Summarizer", "batchable", "history"))


def test_workflow_decorator_on_class(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.workflow
        class Pipeline:
            def run(self, q):
                return q
        """,
    )
    line, col = locate(app, "@nalarc.workflow", "@")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("workflow", "function", "class"))


def test_agent_decorator_on_function(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.agent
        def planner(q):
            return [q]


        @nalarc.workflow
        def main(q):
            return planner(q)
        """,
    )
    line, col = locate(app, "@nalarc.agent", "@")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("agent", "class"))


def test_unresolvable_import(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc
        import definitely_not_a_module_xyz


        @nalarc.workflow
        def main(q):
            return definitely_not_a_module_xyz.go(q)
        """,
    )
    # The offending token is the module name, not the ``import`` keyword.
    line, col = locate(app, "import definitely_not_a_module_xyz", "definitely_not_a_module_xyz")
    # A warning: it may well be installed where the app is served ...
    result = nalarc("build", str(app), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{app}:{line}:{col}: warning: cannot resolve import 'definitely_not_a_module_xyz'" in result.stderr
    # ... and an error with --strict.
    result = nalarc("build", str(app), "--strict", cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("definitely_not_a_module_xyz",))


def test_guarded_imports_of_missing_modules_build_silently(tmp_path: Path) -> None:
    """How real code imports optional and platform modules: no warning, and the app runs."""
    app = write_app(
        tmp_path,
        """
        import os
        import sys
        import nalarc
        try:
            import orjson_is_not_here as fastjson
        except ImportError:
            fastjson = None
        if sys.platform == "win32":
            import winreg
        if os.name == "nt":
            from nt import _getfinalpathname


        def windows_only():
            import msvcrt
            return msvcrt


        @nalarc.tool
        def echo(q):
            return q


        @nalarc.workflow
        def main(q):
            return [echo(q), fastjson is None]
        """,
    )
    result = nalarc("build", str(app), "--strict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ": warning:" not in result.stderr
    done = nalarc("run", str(app), "--workflow", "main", "--input", '{"q": "x"}', cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["x", True]


def test_unknown_tool_directive(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool(retries=2, cache=True)
        def search(q):
            return q


        @nalarc.workflow
        def main(q):
            return search(q)
        """,
    )
    # The offending token is the unknown keyword, not the decorator's ``@``.
    line, col = locate(app, "@nalarc.tool(retries=2, cache=True)", "cache")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("cache", "tool"))


def test_agent_init_with_required_argument(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.agent
        class Writer:
            def __init__(self, model):
                self.model = model

            def write(self, q):
                return q


        @nalarc.workflow
        def main(q):
            return Writer().write(q)
        """,
    )
    # The offending token is the required parameter.
    line, col = locate(app, "def __init__(self, model)", "model")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("Writer", "__init__"))


def test_agent_has_no_such_method(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.agent
        class Writer:
            def write(self, q):
                return q


        @nalarc.workflow
        def main(q):
            w = Writer()
            return w.summarize(q)
        """,
    )
    line, col = locate(app, "w.summarize(q)", "summarize")
    result = nalarc("build", str(app), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{app}:{line}:{col}: warning: agent 'Writer' has no method 'summarize'" in result.stderr
    check_diagnostic(nalarc("build", str(app), "--strict", cwd=tmp_path), app, line, col, ("Writer", "summarize"))
    # Valid Python: it fails when it runs, as plain Python does.
    done = nalarc("run", str(app), "--workflow", "main", "--input", '{"q": "x"}', cwd=tmp_path)
    assert done.returncode == 1
    assert "AttributeError" in done.stderr and "summarize" in done.stderr


def test_nonexistent_app_file(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_app.py"
    result = nalarc("build", str(missing), cwd=tmp_path)
    problems = no_traceback(result)
    if result.returncode != 1:
        problems.append(f"exit status {result.returncode}, expected 1")
    first = result.stderr.splitlines()[0] if result.stderr else ""
    if not re.match(rf"^{re.escape(str(missing))}(:\d+:\d+)?: error: ", first):
        problems.append(f"first stderr line is not '{missing}: error: ...': {first!r}")
    if not re.search(r"no such file|not found|does not exist", first, re.IGNORECASE):
        problems.append(f"first stderr line does not say the file is missing: {first!r}")
    assert not problems, "\n".join([*problems, "stderr was:", result.stderr])


_GENERATOR_APP = """
import nalarc


@nalarc.tool
def fetch(n):
    return n * 2


def pages(k):
    for i in range(k):
        yield fetch(i)


@nalarc.workflow
def main(k):
    return list(pages(k))
"""


def test_fallback_is_a_warning_without_strict(tmp_path: Path) -> None:
    app = write_app(tmp_path, _GENERATOR_APP)
    line, col = locate(app, "def pages(k)", "def")
    result = nalarc("build", str(app), "-o", str(tmp_path / "build"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not no_traceback(result), result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ": warning: " in ln]
    assert warnings, f"no warning for the generator fallback:\n{result.stderr}"
    match = re.match(rf"^{re.escape(str(app))}:(\d+):(\d+): warning: (.*)$", warnings[0])
    assert match, f"warning is not '{app}:<line>:<col>: warning: ...': {warnings[0]!r}"
    assert (int(match[1]), int(match[2])) == (line, col)
    assert "pages" in match[3] and "generator" in match[3].lower()


def test_fallback_is_an_error_with_strict(tmp_path: Path) -> None:
    app = write_app(tmp_path, _GENERATOR_APP)
    line, col = locate(app, "def pages(k)", "def")
    result = nalarc("build", "--strict", str(app), "-o", str(tmp_path / "build"), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("pages", "generator"))
    assert not (tmp_path / "build" / "manifest.json").exists()


# -- nalarc run ----------------------------------------------------------------------

_OK_APP = """
import nalarc


@nalarc.tool
def double(x):
    return x * 2


@nalarc.workflow
def main(x):
    return {"doubled": double(x)}
"""


def test_run_on_syntax_error(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool
        def double(x):
            return x * 2


        @nalarc.workflow
        def main(x):
            y = double(x) +* 2
            return y
        """,
    )
    line, col = locate(app, "y = double(x) +* 2", "*")
    result = nalarc("run", str(app), "--input", '{"x": 1}', cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("syntax",))
    assert result.stdout == ""


def _check_one_line_error(result: Result, must_name: tuple[str, ...]) -> None:
    problems = no_traceback(result)
    if result.returncode != 1:
        problems.append(f"exit status {result.returncode}, expected 1")
    if result.stdout:
        problems.append(f"unexpected stdout: {result.stdout!r}")
    lines = result.stderr.strip("\n").splitlines()
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, expected one")
    if not result.stderr.startswith("error: "):
        problems.append(f"stderr does not start with 'error: ': {result.stderr!r}")
    for word in must_name:
        if word not in (lines[0] if lines else ""):
            problems.append(f"the error line does not name {word!r}")
    assert not problems, "\n".join([*problems, "stderr was:", result.stderr])


def test_run_input_not_json(tmp_path: Path) -> None:
    app = write_app(tmp_path, _OK_APP)
    result = nalarc("run", str(app), "--input", "{x: 1}", cwd=tmp_path)
    _check_one_line_error(result, ("--input", "JSON"))


def test_run_unknown_workflow(tmp_path: Path) -> None:
    app = write_app(tmp_path, _OK_APP)
    result = nalarc("run", str(app), "--workflow", "nope", "--input", '{"x": 1}', cwd=tmp_path)
    _check_one_line_error(result, ("'nope'", "main"))


def test_run_ok_app_for_contrast(tmp_path: Path) -> None:
    """The apps above fail only because of the planted mistake."""
    app = write_app(tmp_path, _OK_APP)
    result = nalarc("run", str(app), "--input", '{"x": 21}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"doubled": 42}'


def test_diagnostic_does_not_depend_on_terminal_width(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool
        def search(query, limit=3):
            return [query] * limit


        @nalarc.workflow
        def main(q):
            return search(q, limt=2)
        """,
    )
    outputs = {}
    for width in (None, "40", "300"):
        env = ENV if width is None else {**ENV, "COLUMNS": width}
        done = subprocess.run(
            [*CLI, "build", str(app)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
        )
        assert done.returncode == 1
        outputs[width] = done.stderr
    assert outputs[None] == outputs["40"] == outputs["300"], outputs


def test_async_def_is_rejected(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import nalarc


        @nalarc.tool
        async def fetch(x):
            return x


        @nalarc.workflow
        def main(q):
            return fetch(q)
        """,
    )
    line, col = locate(app, "async def fetch(x):", "async")
    result = nalarc("build", str(app), cwd=tmp_path)
    check_diagnostic(result, app, line, col, ("async def", "fetch"))
