"""The runtime of compiled ``async def`` code against plain asyncio: compiled == plain.

Two classes of bugs, each with programs that exercise every form of it:

* stepping a compiled async generator by hand (``anext(agen)``, ``agen.asend``,
  ``athrow``, ``aclose``, ``__anext__``, an async generator expression, a class
  whose ``__aiter__`` returns one): the awaitable these make runs trio code, so
  it must be awaited natively, not handed to the asyncio loop;
* calls of async components (and of compiled ``async def`` functions) made by
  code in the blocking form (generator expressions, generators) and consumed on
  the event loop thread: in plain Python they only make coroutines, so they
  must neither wait nor run inline, and a generator yields them unrun.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nalarc import load_app
from nalarc.executor import InProcessRunner, Placement, run_requests
from nalarc.testing import call_plainly, outcome_of_exception

GENERATOR_STEPS = '''
import asyncio
import nalarc

LOG = []


@nalarc.tool
async def fetch(x):
    await asyncio.sleep(0.001 * (x % 3))
    return x * 10


async def counter(n):
    try:
        for i in range(n):
            got = yield await fetch(i)
            if got is not None:
                LOG.append(f"sent {got}")
    except KeyError as e:
        yield f"thrown {e}"
    finally:
        LOG.append("closed")


class Numbers:
    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return counter(self.n)


@nalarc.workflow
async def by_hand(n):
    LOG.clear()
    agen = counter(n)
    first = await anext(agen)
    second = await agen.asend("hello")
    third = await agen.__anext__()
    thrown = await agen.athrow(KeyError("k"))
    await agen.aclose()
    rest = await anext(agen, "done")
    try:
        await anext(agen)
        stopped = "no"
    except StopAsyncIteration:
        stopped = "StopAsyncIteration"
    return [first, second, third, thrown, rest, stopped, list(LOG)]


@nalarc.workflow
async def generator_expression(n):
    squares = (await fetch(i) for i in range(n))
    head = await anext(squares)
    nxt = await squares.__anext__()
    sent = await squares.asend(None)
    tail = [s async for s in squares]
    again = (await fetch(i) for i in range(n))
    await again.aclose()
    return [head, nxt, sent, tail, await anext(again, "closed"), aiter(squares) is squares]


@nalarc.workflow
async def class_aiter(n):
    LOG.clear()
    return [[x async for x in Numbers(n)], list(LOG)]
'''

LAZY_CALLS = '''
import asyncio
import time
import nalarc


@nalarc.tool
async def quote(v):
    await asyncio.sleep(0.01 * (3 - len(v) % 3))
    if v == "bad":
        raise ValueError("bad vendor")
    return len(v)


@nalarc.tool
def measure(v):
    time.sleep(0.01)
    return len(v) * 2


@nalarc.agent
class Planner:
    async def plan(self, x):
        await asyncio.sleep(0.01)
        return x * 10


def collect(*xs):
    return list(xs)


@nalarc.workflow
async def star_unpacked(vs):
    good = [v for v in vs if v != "bad"]
    planners = [Planner(), Planner()]
    gathered = await asyncio.gather(*(quote(v) for v in vs), return_exceptions=True)
    plans = await asyncio.gather(*(p.plan(i) for i, p in enumerate(planners)))
    shown = [*(quote(v) for v in good)]
    sync = collect(*(measure(v) for v in vs))
    return {"gathered": [r if isinstance(r, int) else repr(r) for r in gathered], "plans": plans,
            "shown": [await s for s in shown], "sync": sync, "set": sorted({*(measure(v) for v in good)})}


@nalarc.workflow
async def stored_generators(vs):
    good = [v for v in vs if v != "bad"]

    async def labelled(v):
        return f"{v}={await quote(v)}"

    coros = (labelled(v) for v in good)
    calls = (quote(v) for v in vs)
    planners = [Planner(), Planner()]
    plans = (p.plan(i) for i, p in enumerate(planners))
    looped = []
    for c in (quote(v) for v in good):
        looped.append(await c)
    return {"labels": await asyncio.gather(*coros),
            "calls": [r if isinstance(r, int) else repr(r) for r in await asyncio.gather(*calls, return_exceptions=True)],
            "plans": await asyncio.gather(*plans), "looped": looped}


@nalarc.workflow
async def unpacked_coroutines(x, y):
    a, b = quote(x), quote(y)
    c, d = [quote(x), quote(y)]
    (e, f), g = (quote(x), quote(y)), quote(x)
    h, i = (quote(v) for v in (x, y))

    def generate():
        for v in (x, y):
            yield quote(v)

    yielded = [await q for q in generate()]
    return [await b, await a, await d, await c, await f, await e, await g, await i, await h, yielded]


@nalarc.workflow
async def as_completed_of_a_generator(vs):
    pending = asyncio.as_completed(quote(v) for v in vs)  # asyncio checks its argument when iterated
    try:
        for f in pending:
            await f
    except TypeError as e:
        return str(e)
'''

#: (workflow, inputs) for each program.
REQUESTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "generator_steps": [("by_hand", {"n": 4}), ("generator_expression", {"n": 4}), ("class_aiter", {"n": 2})],
    "lazy_calls": [
        ("star_unpacked", {"vs": ["ab", "bad", "cdef"]}),
        ("stored_generators", {"vs": ["ab", "bad", "cdef"]}),
        ("unpacked_coroutines", {"x": "abc", "y": "z"}),
        ("as_completed_of_a_generator", {"vs": ["ab"]}),
    ],
}
SOURCES = {"generator_steps": GENERATOR_STEPS, "lazy_calls": LAZY_CALLS}


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(SOURCES[name]), encoding="utf-8")
    return path


def _plain(path: Path, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    module_name = f"plain_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        out = []
        for workflow, kwargs in requests:
            try:
                out.append(call_plainly(getattr(module, workflow), kwargs))
            except Exception as exc:  # noqa: BLE001 - compared as data
                out.append(outcome_of_exception(exc))
        return out
    finally:
        sys.modules.pop(module_name, None)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_compiled_equals_plain_in_process(name: str, tmp_path: Path) -> None:
    path = _write(tmp_path, name)
    expected = _plain(path, REQUESTS[name])
    runner = InProcessRunner(load_app(path, out_dir=tmp_path / "build"))
    got = []
    for workflow, kwargs in REQUESTS[name]:
        try:
            got.append(runner.run(workflow, dict(kwargs)))
        except Exception as exc:  # noqa: BLE001 - compared as data
            got.append(outcome_of_exception(exc))
    runner.close()
    workflows = [w for w, _ in REQUESTS[name]]
    assert dict(zip(workflows, got)) == dict(zip(workflows, expected))


def test_compiled_equals_plain_on_worker_processes(tmp_path: Path) -> None:
    """Both programs on 2 worker processes with 2 instances of the agent."""
    for name in sorted(SOURCES):
        path = _write(tmp_path, name)
        expected = _plain(path, REQUESTS[name])
        loaded = load_app(path, out_dir=tmp_path / f"build_{name}")
        requests = [(w, dict(k), "s1") for w, k in REQUESTS[name]]
        outcomes = run_requests(loaded, requests, placement=Placement(workers=2, default_instances=2))
        got = [o.value if o.error is None else outcome_of_exception(o.error) for o in outcomes]
        workflows = [f"{name}.{w}" for w, _ in REQUESTS[name]]
        assert dict(zip(workflows, got)) == dict(zip(workflows, expected))
