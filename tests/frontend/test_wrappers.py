"""The app's own ``functools.wraps`` decorators: seen into, or left opaque when ``fn`` escapes."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import libcst as cst
import pytest

from nalarc import load_app
from nalarc._build import build
from nalarc.executor import InProcessRunner
from nalarc.frontend._wrappers import wrapper_chain


def _chain(source: str, decorator: str) -> list[str] | None:
    module = cst.parse_module(textwrap.dedent(source))
    defs = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}

    def definition(expr: cst.BaseExpression) -> cst.FunctionDef | None:
        return defs.get(expr.value) if isinstance(expr, cst.Name) else None

    def resolve(expr: cst.BaseExpression) -> str | None:
        return cst.helpers.get_full_name_for_node(expr)

    chain = wrapper_chain(cst.parse_expression(decorator), definition, resolve)
    return None if chain is None else [f.name.value for f in chain]


SEEN_INTO = {
    "plain": ('''
        def timed(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                start = now()
                try:
                    return fn(*args, **kwargs)
                finally:
                    TIMES[fn.__name__] = now() - start
            return wrapper
    ''', "timed", ["timed", "wrapper"]),
    "factory-wraps": ('''
        def retry(times):
            def decorate(fn):
                @functools.wraps(fn)
                def wrapper(*args):
                    return [fn(*args) for _ in range(times)][-1]
                return wrapper
            return decorate
    ''', "retry(3)", ["retry", "decorate", "wrapper"]),
}

OPAQUE = {
    "fn stored": '''
        def register(fn):
            REGISTRY.append(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper
    ''',
    "fn handed to other code": '''
        def pooled(fn):
            def wrapper(*args):
                return POOL.submit(fn, *args).result()
            return wrapper
    ''',
    "wrapper called by the decorator": '''
        def warm(fn):
            def wrapper(*args):
                return fn(*args)
            wrapper(0)
            return wrapper
    ''',
    "returns fn itself": '''
        def mark(fn):
            fn.marked = True
            return fn
    ''',
    "two returns": '''
        def maybe(fn):
            def wrapper(*args):
                return fn(*args)
            if DEBUG:
                return fn
            return wrapper
    ''',
    "wrapper under another decorator": '''
        def cached(fn):
            @functools.lru_cache
            def wrapper(*args):
                return fn(*args)
            return wrapper
    ''',
    "two parameters": '''
        def both(fn, other):
            def wrapper(*args):
                return fn(*args)
            return wrapper
    ''',
}


@pytest.mark.parametrize("name", sorted(SEEN_INTO))
def test_decorators_nalarc_sees_into(name: str) -> None:
    source, decorator, chain = SEEN_INTO[name]
    assert _chain(source, decorator) == chain


@pytest.mark.parametrize("name", sorted(OPAQUE))
def test_decorators_that_stay_opaque(name: str) -> None:
    decorator = OPAQUE[name].split("def ", 1)[1].split("(", 1)[0]
    assert _chain(OPAQUE[name], decorator) is None


APP = '''
import functools
import time
import nalarc

LOG = []

def record(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        LOG.append(("enter", fn.__name__))
        try:
            return fn(*args, **kwargs)
        finally:
            LOG.append(("leave", fn.__name__))
    return wrapper

def retry(times):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            for attempt in range(times):
                try:
                    return fn(*args)
                except LookupError as error:
                    LOG.append(("retry", str(error)))
            raise RuntimeError(f"{fn.__name__} gave up")
        return wrapper
    return decorate

def escapes(fn):
    def wrapper(*args):
        return apply(fn, args)
    return wrapper

def apply(f, args):
    return f(*args)

SPANS = []

@nalarc.tool
def fetch(i):
    start = time.monotonic()
    time.sleep(0.1)
    SPANS.append((start, time.monotonic()))
    if i < 0:
        raise LookupError(f"no {i}")
    return i * 10

@record
@retry(2)
def both(a, b):
    return [fetch(a), fetch(b)]

@escapes
def opaque(a):
    return fetch(a) + 1

@nalarc.workflow
def wf(a, b):
    SPANS.clear()
    LOG.clear()
    pair = both(a, b)
    try:
        both(-1, b)
    except RuntimeError as error:
        failed = str(error)
    return {"pair": pair, "failed": failed, "opaque": opaque(a), "log": list(LOG), "name": both.__name__}

@nalarc.workflow
def overlap():
    SPANS.clear()
    both(1, 2)
    (s1, e1), (s2, e2) = sorted(SPANS)
    return s2 < e1
'''


def test_a_decorated_helper_compiles_with_its_wrappers_and_equals_plain(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    result = build(app, tmp_path / "build")
    decorated = [d.message for d in result.warnings if " is decorated with " in d.message]
    # Only the decorator that hands fn to other code is a fallback.
    assert len(decorated) == 1 and decorated[0].startswith("opaque is decorated with @escapes")
    runner = InProcessRunner(load_app(tmp_path / "build"))
    spec = importlib.util.spec_from_file_location("plain_wrappers_app", app)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plain = module.wf(a=1, b=2)
    assert runner.run("wf", {"a": 1, "b": 2}) == plain
    assert plain["failed"] == "both gave up" and ("retry", "no -1") in plain["log"]
    # The wrapped helper's two calls ran at once: wrappers compiled with it await it.
    assert runner.run("overlap", {}) is True
