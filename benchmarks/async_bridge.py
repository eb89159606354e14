"""What the asyncio bridge costs: awaiting user asyncio code from compiled (trio) code.

Run: ``python benchmarks/async_bridge.py [--calls 2000] [--rounds 5] [--out report.json]``

Compiled code runs on trio; user asyncio code (a leaf ``async def`` tool, an
``httpx`` coroutine) runs on the process's asyncio loop thread
(``nalarc/runtime/_asyncio_bridge.py``).  Measured, in interleaved rounds, in
microseconds per await (median of the rounds' medians, and p99):

* ``asyncio, native``: a no-op coroutine awaited inside one asyncio loop (the floor
  plain Python pays);
* ``trio, native (compiled coroutine)``: ``_rt.aw`` of a compiled (marked)
  no-op coroutine, awaited on trio;
* ``bridge: foreign coroutine``: ``_rt.aw`` of a user no-op coroutine, run on the
  asyncio thread and awaited from trio (the task's done callback wakes trio through
  its token; this is what nalarc uses);
* ``bridge alternative: to_thread(future.result)``: the same hand-off with
  ``run_coroutine_threadsafe`` and a trio worker thread blocking on the result
  (the other way to do it, for comparison);
* ``sync tool`` / ``leaf async tool``, in-process and on one worker process: a compiled
  call of a no-op tool and the wait for its value (the async tool runs on the asyncio
  thread of the process that hosts it).

Throughput: ``--batch`` no-op async tool calls started at once, in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from _common import report, summarize
from nalarc import load_app
from nalarc import runtime as _rt
from nalarc.executor import Placement
from nalarc.executor._app import open_backend
from nalarc.executor._local import run_frame
from nalarc.executor._statestore import StateStore
from nalarc.runtime import lowlevel
from nalarc.runtime.lowlevel import get_loop

APP = '''
import nalarc

@nalarc.tool
def sync_noop(x):
    return x

@nalarc.tool
async def async_noop(x):
    return x

@nalarc.workflow
async def main():
    return [sync_noop(1), await async_noop(1)]
'''


async def foreign_noop() -> int:
    return 1


@_rt.compiled_async
async def compiled_noop() -> int:
    return 1


def asyncio_native_round(calls: int) -> list[float]:
    async def body() -> list[float]:
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await foreign_noop()
            samples.append(time.perf_counter() - started)
        return samples

    return asyncio.run(body())


async def in_frame(runtime: lowlevel.Runtime, body: Callable[[], Awaitable[list[float]]]) -> list[float]:
    return await run_frame(body, (), {}, runtime, "bench", "bench")  # type: ignore[no-any-return]


async def aw_round(runtime: lowlevel.Runtime, make: Callable[[], Any], calls: int) -> list[float]:
    async def body() -> list[float]:
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await _rt.aw(make())
            samples.append(time.perf_counter() - started)
        return samples

    return await in_frame(runtime, body)


async def to_thread_round(calls: int) -> list[float]:
    loop = get_loop()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(foreign_noop(), loop)
        await trio.to_thread.run_sync(future.result)
        samples.append(time.perf_counter() - started)
    return samples


async def tool_round(runtime: lowlevel.Runtime, tool: Any, flags: int, calls: int) -> list[float]:
    async def body() -> list[float]:
        samples = []
        for i in range(calls):
            started = time.perf_counter()
            future = _rt.call(tool, None, flags, (i,), {})
            await (_rt.aw(future) if flags & lowlevel.AWAIT else _rt.m(future))
            samples.append(time.perf_counter() - started)
        return samples

    return await in_frame(runtime, body)


async def async_tool_throughput(runtime: lowlevel.Runtime, tool: Any, batch: int) -> list[float]:
    async def body() -> list[float]:
        started = time.perf_counter()
        futures = [_rt.call(tool, None, lowlevel.AWAIT, (i,), {}) for i in range(batch)]
        for future in futures:
            await _rt.aw(future)
        return [batch / (time.perf_counter() - started)]

    return await in_frame(runtime, body)


async def measure(calls: int, rounds: int, batch: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bridge_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
        app = load_app(Path(tmp) / "bridge_app.py", out_dir=Path(tmp) / "build")
        sync_tool, async_tool = app.module.sync_noop, app.module.async_noop
        store = StateStore(None)
        async with open_backend(app, store, None) as inline, \
                open_backend(app, store, Placement(workers=1)) as process:
            local, remote = inline.new_runtime(), process.new_runtime()

            async def native_asyncio() -> list[float]:
                return await trio.to_thread.run_sync(asyncio_native_round, calls)

            paths: dict[str, Callable[[], Awaitable[list[float]]]] = {
                "asyncio, native": native_asyncio,
                "trio, native (compiled coroutine)": lambda: aw_round(local, compiled_noop, calls),
                "bridge: foreign coroutine": lambda: aw_round(local, foreign_noop, calls),
                "bridge alternative: to_thread(future.result)": lambda: to_thread_round(calls),
                "sync tool, in-process": lambda: tool_round(local, sync_tool, 0, calls),
                "leaf async tool, in-process": lambda: tool_round(local, async_tool, lowlevel.AWAIT, calls),
                "sync tool, worker process": lambda: tool_round(remote, sync_tool, 0, calls),
                "leaf async tool, worker process": lambda: tool_round(remote, async_tool, lowlevel.AWAIT, calls),
            }
            for warm in paths.values():
                await warm()
            samples: dict[str, list[list[float]]] = {name: [] for name in paths}
            for _ in range(rounds):
                for name, path in paths.items():
                    samples[name].append(await path())
            await async_tool_throughput(local, async_tool, batch)
            throughput = max([(await async_tool_throughput(local, async_tool, batch))[0] for _ in range(3)])
    rows = [summarize(name, measured) for name, measured in samples.items()]
    for row in rows:
        if row["path"] == "leaf async tool, in-process":
            row["calls/s"] = throughput
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="awaits per round and path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000, help="async tool calls started at once")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = trio.run(measure, args.calls, args.rounds, args.batch)
    report(
        "asyncio bridge: microseconds per await",
        rows,
        ["path", "median us", "best round us", "p99 us", "calls/s"],
        args.out,
        {"calls": args.calls, "rounds": args.rounds, "batch": args.batch},
    )


if __name__ == "__main__":
    main()
