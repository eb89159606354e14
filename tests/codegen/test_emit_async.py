"""Code generation for code written ``async def``: what is left as written, what is marked, spelled out."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nalarc import load_app
from nalarc._build import build
from nalarc.executor import InProcessRunner

SOURCE = '''
import asyncio
import contextlib
import nalarc

@nalarc.tool
async def fetch(q):
    await asyncio.sleep(0)
    return q

@nalarc.tool
def shout(q):
    return q.upper()

@contextlib.asynccontextmanager
async def scope(q):
    yield await fetch(q)

async def letters(word):
    for ch in word:
        yield shout(ch)

def plain_helper(x):
    return x + 1

@nalarc.workflow
async def wf(word):
    async with scope(word) as w:
        got = [c async for c in letters(w)]
    lazy = (await fetch(c) for c in got)
    out = [x async for x in lazy]
    return out, plain_helper(len(out))
'''


def compiled_source(tmp_path: Path, source: str, name: str = "app") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    result = build(path, tmp_path / "build")
    return (result.out_dir / f"{name}.py").read_text(encoding="utf-8")


def test_leaf_async_tools_are_left_exactly_as_written(tmp_path: Path) -> None:
    code = compiled_source(tmp_path, SOURCE)
    assert "@nalarc.tool\nasync def fetch(q):\n    await asyncio.sleep(0)\n    return q\n" in code
    assert "def plain_helper(x):\n    return x + 1\n" in code


def test_compiled_async_functions_are_marked_innermost(tmp_path: Path) -> None:
    code = compiled_source(tmp_path, SOURCE)
    assert "@nalarc.workflow\n@_nalarc_rt.compiled_async\nasync def wf(word):" in code
    assert "@contextlib.asynccontextmanager\n@_nalarc_rt.compiled_async\nasync def scope(q):" in code
    assert "@_nalarc_rt.compiled_async\nasync def letters(word):" in code


def test_async_with_for_and_generator_expressions_are_spelled_out(tmp_path: Path) -> None:
    code = compiled_source(tmp_path, SOURCE)
    assert "await _nalarc_rt.acm_enter(" in code and "await _nalarc_rt.acm_exit(" in code
    assert "async for c in _nalarc_rt.aiter_async(" in code
    assert "_nalarc_rt.native_agen(" in code  # the async generator expression stays lazy and native
    assert "await _nalarc_rt.aw(_nalarc_rt.call(fetch, None," in code


def test_the_compiled_program_runs(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    runner = InProcessRunner(load_app(path, out_dir=tmp_path / "build"))
    assert runner.run("wf", {"word": "ab"}) == (["A", "B"], 3)


NO_COMPONENTS = '''
import asyncio
import nalarc

async def double(x):
    await asyncio.sleep(0)
    return 2 * x

@nalarc.workflow
async def wf(x):
    f = str
    return f(await double(x))
'''


def test_an_app_without_components_still_imports_the_runtime_it_uses(tmp_path: Path) -> None:
    """An async workflow (or a dynamic call) compiles even when the app has no component."""
    code = compiled_source(tmp_path, NO_COMPONENTS)
    assert "from nalarc import runtime as _nalarc_rt\n" in code
    runner = InProcessRunner(load_app(tmp_path / "build"))
    assert runner.run("wf", {"x": 21}) == "42"


STAR_GENERATORS = '''
import asyncio
import nalarc

@nalarc.tool
async def fetch(q):
    await asyncio.sleep(0)
    return q

@nalarc.tool
def shout(q):
    return q.upper()

def collect(*xs):
    return list(xs)

@nalarc.workflow
async def wf(qs):
    got = await asyncio.gather(*(fetch(q) for q in qs))
    shown = [*(shout(q) for q in qs)]
    later = (fetch(q) for q in qs)
    return got, shown, await asyncio.gather(*later)

@nalarc.workflow
def sync_wf(qs):
    return collect(*(shout(q) for q in qs))
'''


def test_a_star_unpacked_generator_expression_becomes_a_list_comprehension(tmp_path: Path) -> None:
    """``*`` unpacks on the event loop thread: the body is compiled for it, not in the blocking form."""
    code = compiled_source(tmp_path, STAR_GENERATORS)
    assert "(*[_nalarc_rt.call(fetch, None, " in code and "async for q in _nalarc_rt.aiter(" in code
    assert "[*[_nalarc_rt.call(shout, None, " in code
    assert "(collect, (*[_nalarc_rt.call(shout, None, " in code  # in a synchronous workflow too
    assert "bcall(shout" not in code
    # A generator expression kept for later stays lazy; it yields the async calls unrun.
    assert "later = _nalarc_rt.region_iter((_nalarc_rt.bmd_lazy(_nalarc_rt.bcall(fetch, None, " in code
    runner = InProcessRunner(load_app(tmp_path / "build"))
    assert runner.run("wf", {"qs": ["a", "b"]}) == (["a", "b"], ["A", "B"], ["a", "b"])
    assert runner.run("sync_wf", {"qs": ["a", "b"]}) == ["A", "B"]
