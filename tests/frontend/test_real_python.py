"""Real Python the compiler used to reject or get wrong: each builds, and compiled == plain.

One small app per class of bug (issue 11); each also checks the compiler kept
the parallelism it should (component calls are futures), so a fix that only
falls back to sequential code would fail here.  The differential corpus
(tests/corpus/apps) has the larger, realistic versions.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nalarc import load_app
from nalarc._build import build
from nalarc.executor import InProcessRunner

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "redefinitions": ("""
        import sys, typing, nalarc

        @nalarc.tool
        def t(x):
            return x + 1

        class C:
            def __init__(self):
                self._v = 1
            @property
            def v(self):
                return self._v
            @v.setter
            def v(self, val):
                self._v = val

        @typing.overload
        def f(x: int) -> int: ...
        @typing.overload
        def f(x: str) -> str: ...
        def f(x):
            return t(x) if isinstance(x, int) else x

        if sys.version_info >= (3, 0):
            def g(x):
                return t(x) * 10
        else:
            def g(x):
                return x

        def h(x):
            return x
        def h(x):
            return t(x) - 1

        @nalarc.workflow
        def main(x):
            c = C()
            c.v = 5
            return [f(x), f("s"), g(x), h(x), c.v]
        """, {"x": 1}),
    "conditional-components": ("""
        import os, nalarc
        if os.sep == "/":
            @nalarc.tool
            def fetch(q):
                return "posix:" + q
        else:
            @nalarc.tool
            def fetch(q):
                return "other:" + q

        @nalarc.workflow
        def main(q):
            return [fetch(q), fetch(q + "2")]
        """, {"q": "a"}),
    "agent-inheritance-and-attributes": ("""
        import abc, nalarc

        class Base(abc.ABC):
            kind = "base"
            def describe(self, x):
                return f"{self.kind}:{x}"

        class Mixin:
            def shout(self, x):
                return x.upper()

        @nalarc.agent
        class Planner(Mixin, Base):
            kind = "planner"
            def __init__(self):
                self.name = "P"
            @property
            def label(self):
                return self.name + "!"
            def describe(self, x):
                return "[" + super().describe(x) + "]"
            @classmethod
            def make(cls):
                return cls()
            @staticmethod
            def norm(x):
                return x.strip()
            def _private(self, x):
                return x * 2

        @nalarc.workflow
        def main(x):
            p = Planner()
            q = Planner.make()
            return [p.describe(x), p.shout(x), p.name, p.label, Planner().kind, isinstance(p, Planner),
                    isinstance(p, Base), Planner.norm(" a "), p.norm(" b "), q.describe("q"), p._private(x)]
        """, {"x": "hi"}),
    "user-decorators": ("""
        import functools, nalarc

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*a, **k):
                return fn(*a, **k)
            return wrapper

        def retry(n):
            def deco(fn):
                def inner(*a, **k):
                    for _ in range(n):
                        try:
                            return fn(*a, **k)
                        except ValueError:
                            pass
                    return None
                return inner
            return deco

        @nalarc.tool
        def t(x):
            return x * 2

        @logged
        def helper(x):
            return t(x) + 1

        @functools.lru_cache(maxsize=None)
        def cached(x):
            return t(x) + 100

        @retry(2)
        def retried(x):
            return t(x)

        @nalarc.tool
        @retry(3)
        def decorated_tool(x):
            return t(x) * 10

        @nalarc.workflow
        def main(x):
            return [helper(x), cached(x), cached(x), retried(x), decorated_tool(x)]
        """, {"x": 3}),
    "generators-and-next": ("""
        import itertools, nalarc

        @nalarc.tool
        def t(x):
            return x * 2

        def gen(xs):
            for x in xs:
                yield t(x)

        @nalarc.workflow
        def main(n):
            out = []
            g = gen(range(n))
            out.append(next(g))
            for v in g:
                out.append(v)
            try:
                next(g)
            except StopIteration:
                out.append("stop")
            out.append(next(gen([]), "default"))
            out += list(itertools.islice(gen(range(10)), 3))
            return out
        """, {"n": 3}),
    "custom-exceptions": ("""
        import nalarc

        class ServiceError(Exception):
            pass

        class RateLimited(ServiceError):
            def __init__(self, model, wait):
                super().__init__(f"{model} limited for {wait}s")
                self.model, self.wait = model, wait

        @nalarc.tool
        def call_model(model):
            raise RateLimited(model, 1.5)

        @nalarc.workflow
        def main(model):
            try:
                call_model(model)
            except ServiceError as e:
                return [type(e).__name__, str(e), e.model, e.wait]
        """, {"model": "gpt"}),
    "handle-writes-type-and-lambdas": ("""
        import nalarc

        @nalarc.agent
        class Summarizer:
            priority = 1
            def __init__(self):
                self._style = "plain"
            @property
            def style(self):
                return self._style
            @style.setter
            def style(self, value):
                self._style = value.strip().lower()
            def summarize(self, text):
                return f"{self._style}:{text}"

        @nalarc.agent
        class Urgent(Summarizer):
            priority = 5

        @nalarc.workflow
        def main(text):
            s = Summarizer()
            before = s.style
            s.style = "  TERSE "
            agents = {"a": s, "b": Urgent()}
            top = max(agents.values(), key=lambda a: a.priority)
            return [before, s.style, s.summarize(text), type(s).__name__, type(top).__name__]
        """, {"text": "x"}),
    "except-star-genexps-and-unpacking": ("""
        import statistics
        from collections import Counter
        import nalarc

        @nalarc.tool
        def pair(x):
            if x < 0:
                raise ValueError(f"negative {x}")
            return (x % 2, x)

        @nalarc.tool
        def amount(x):
            return x * 1.5

        @nalarc.workflow
        def main(xs):
            pairs = [pair(x) for x in xs if x >= 0]
            parity = Counter(p for p, _ in pairs)
            spread = round(statistics.pstdev(float(a) for a in [amount(x) for x in xs]), 4)
            caught = []
            try:
                raise ExceptionGroup("many", [ValueError("v"), KeyError("k")])
            except* ValueError as group:
                caught.append(len(group.exceptions))
            except* KeyError:
                caught.append("key")
            return [dict(parity), spread, caught]
        """, {"xs": [1, 2, 3, 4]}),
    "half-consumed-generator-closed-at-return": ("""
        import nalarc

        class Escalate(Exception):
            pass

        @nalarc.tool
        def handle(x):
            if x == 2:
                raise Escalate(x)
            return x * 10

        def replies(xs, log):
            for x in xs:
                try:
                    yield handle(x)
                finally:
                    log.append(x)

        @nalarc.workflow
        def main(xs):
            log, out = [], []
            stream = replies(xs, log)
            while len(out) < 3:
                try:
                    out.append(next(stream))
                except Escalate:
                    stream = replies(xs[len(out) + 1:], log)
            return {"out": out, "log": log}  # the last stream closes when main returns
        """, {"xs": [1, 2, 3, 4, 5]}),
    "module-level-calls-of-compiled-helpers": ("""
        import nalarc

        @nalarc.tool
        def search(q):
            return q.upper()

        def join(parts):
            return " + ".join(parts)

        @nalarc.workflow
        def main(topic):
            return [join([search(topic), "!"]), BANNER, LOUD]

        BANNER = join(["a", "b"])          # at import: join is async once compiled
        LOUD = join([search("x"), "y"])    # and a tool call at import runs as a plain call
        """, {"topic": "t"}),
}


def _plain(app: Path, workflow: str, inputs: dict[str, Any]) -> Any:
    spec = importlib.util.spec_from_file_location(f"plain_{app.parent.name}", app)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        return getattr(module, workflow)(**inputs)
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builds_and_equals_plain(name: str, tmp_path: Path) -> None:
    source, inputs = CASES[name]
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(source), encoding="utf-8")
    expected = _plain(app, "main", inputs)
    result = build(app, tmp_path / "build")
    assert any(f.futures for f in result.program.functions().values()), "no component call became a future"
    runner = InProcessRunner(load_app(result.out_dir))
    try:
        assert runner.run("main", dict(inputs), "s") == expected
    finally:
        runner.close()


def test_tools_imported_from_a_local_module_are_components(tmp_path: Path) -> None:
    (tmp_path / "tools_mod.py").write_text("import nalarc\n\n@nalarc.tool\ndef t(x):\n    return x + 1\n")
    (tmp_path / "app.py").write_text(
        "import nalarc\nfrom tools_mod import t\n\n@nalarc.workflow\ndef main(x):\n    return [t(x), t(x + 1)]\n"
    )
    result = build(tmp_path / "app.py", tmp_path / "build")
    main = result.program.functions()["app:main"]
    assert [f.component for f in main.futures] == ["tools_mod:t", "tools_mod:t"] and main.is_async


def test_a_very_deep_expression_builds_unchanged(tmp_path: Path) -> None:
    """LibCST nests implicit string concatenation: 3,000 pieces are 3,000 levels deep
    (its parser itself stops at about 4,000)."""
    source = "TEXT = (\n" + "".join(f"    'piece {i} '\n" for i in range(3000)) + ")\n"
    app = tmp_path / "topics.py"
    app.write_text(source, encoding="utf-8")
    result = build(app, tmp_path / "build")
    assert (result.out_dir / "topics.py").read_text(encoding="utf-8") == source


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("latin1", "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n".encode("latin-1")),
        ("crlf", b"def f():\r\n    return 1\r\n"),
        ("bom", b"\xef\xbb\xbfX = 1\n"),
        ("libcst-except-space", b"try:\n    pass\nexcept ValueError :\n    pass\n"),
    ],
)
def test_modules_with_nothing_to_rewrite_come_out_byte_identical(name: str, data: bytes, tmp_path: Path) -> None:
    """Encodings (PEP 263), line endings, a BOM, and what LibCST's round trip would change."""
    app = tmp_path / f"{name.replace('-', '_')}.py"
    app.write_bytes(data)
    result = build(app, tmp_path / "build")
    assert (result.out_dir / app.name).read_bytes() == data


def test_valid_python_libcst_cannot_parse_is_copied_unchanged(tmp_path: Path) -> None:
    """``(x): int = 1`` is valid Python LibCST rejects; a local module without nalarc still builds."""
    helper = b"def f():\n    (x): int = 1\n    return 2\n"
    (tmp_path / "oddsyntax.py").write_bytes(helper)
    (tmp_path / "app.py").write_text(
        "import nalarc\nimport oddsyntax\n\n@nalarc.tool\ndef t(x):\n    return x\n\n"
        "@nalarc.workflow\ndef main():\n    return [t(1), oddsyntax.f()]\n"
    )
    result = build(tmp_path / "app.py", tmp_path / "build")
    assert (result.out_dir / "oddsyntax.py").read_bytes() == helper
    assert any("LibCST cannot parse" in w.message and w.path.endswith("oddsyntax.py") for w in result.warnings)
    runner = InProcessRunner(load_app(result.out_dir))
    try:
        assert runner.run("main", {}, "s") == [1, 2]
    finally:
        runner.close()
