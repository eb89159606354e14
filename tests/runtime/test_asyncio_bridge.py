"""The process's asyncio loop thread, and the trio-side ``await`` of compiled code.

Real loops and threads throughout: trio in the test's thread, asyncio in the
bridge's thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

from nalarc import runtime as _rt
from nalarc.runtime._asyncio_bridge import await_in_loop, call_in_loop, get_loop, on_loop_thread, run_blocking
from nalarc.executor._local import InProcessBackend
from nalarc.runtime.lowlevel import run_in_frame

probe: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")


async def where(value: Any = None) -> tuple[str, Any]:
    await asyncio.sleep(0)
    return threading.current_thread().name, value


async def fails() -> None:
    await asyncio.sleep(0)
    raise KeyError("from asyncio")


def test_one_loop_per_process_in_a_thread_of_its_own() -> None:
    loop = get_loop()
    assert get_loop() is loop and loop.is_running() and not on_loop_thread()
    assert run_blocking(where(1)) == ("nalarc-asyncio", 1)


def test_awaiting_on_the_loop_does_not_block_trio() -> None:
    ticks: list[float] = []

    async def main() -> tuple[str, Any]:
        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                for _ in range(5):
                    ticks.append(trio.current_time())
                    await trio.sleep(0.02)

            nursery.start_soon(tick)
            return await await_in_loop(asyncio.sleep(0.15, result="slept"))  # type: ignore[return-value]

    assert trio.run(main) == "slept"
    assert len(ticks) == 5, "trio's other task did not run while asyncio slept"


def test_exceptions_keep_type_and_traceback() -> None:
    with pytest.raises(KeyError, match="from asyncio") as caught:
        trio.run(await_in_loop, fails())
    assert "fails" in [frame.name for frame in caught.traceback]
    with pytest.raises(KeyError, match="from asyncio"):
        run_blocking(fails())


def test_context_variables_go_with_the_coroutine() -> None:
    async def read() -> str:
        return probe.get()

    async def main() -> str:
        probe.set("trio side")
        return await await_in_loop(read())

    assert trio.run(main) == "trio side"
    token = probe.set("thread side")
    try:
        assert run_blocking(read()) == "thread side"
    finally:
        probe.reset(token)


def test_cancelling_the_trio_side_cancels_the_asyncio_task() -> None:
    cancelled = threading.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        with trio.move_on_after(0.05):
            await await_in_loop(long())

    trio.run(main)
    assert cancelled.wait(2)


def test_sync_calls_run_on_the_loop_thread() -> None:
    assert trio.run(call_in_loop, lambda: threading.current_thread().name) == "nalarc-asyncio"


def test_run_blocking_refuses_the_loop_thread() -> None:
    async def nested() -> None:
        run_blocking(where())

    with pytest.raises(RuntimeError, match="loop thread"):
        run_blocking(nested())


# -- aw and friends, in a real frame ----------------------------------------------------


def in_frame(body: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        runtime = InProcessBackend().new_runtime()
        return await run_in_frame(body, runtime, "s", "request-1", top=True)

    return trio.run(main)


async def foreign_agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i * i


class ForeignManager:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def __aenter__(self) -> ForeignManager:
        await asyncio.sleep(0)
        self.events.append(f"enter on {threading.current_thread().name}")
        return self

    async def __aexit__(self, *exc: Any) -> bool:
        self.events.append(f"exit {exc[0].__name__ if exc[0] else 'ok'}")
        return exc[0] is KeyError


def test_aw_runs_foreign_coroutines_and_futures_on_the_loop() -> None:
    async def body() -> list[Any]:
        name, _ = await _rt.aw(where())
        loop = await _rt.dyn(asyncio.get_running_loop, (), {})
        slept = await _rt.aw(asyncio.sleep(0, "foreign"))  # not through dyn: the real asyncio.sleep
        return [name, loop is get_loop(), slept]

    assert in_frame(body) == ["nalarc-asyncio", True, "foreign"]


def test_aw_of_a_non_awaitable_raises_like_python() -> None:
    async def body() -> None:
        await _rt.aw(3)

    with pytest.raises(TypeError, match="can't be used in 'await' expression"):
        in_frame(body)


def test_async_for_and_async_with_over_foreign_objects() -> None:
    manager = ForeignManager()

    async def body() -> list[int]:
        squares = [x async for x in _rt.aiter_async(foreign_agen(4))]
        entered = await _rt.acm_enter(manager)
        assert entered is manager
        assert await _rt.acm_exit(manager, KeyError("swallowed"))
        return squares

    assert in_frame(body) == [0, 1, 4, 9]
    assert manager.events == ["enter on nalarc-asyncio", "exit KeyError"]


def test_asyncio_objects_are_used_on_their_loop() -> None:
    """A Queue and a Lock made by compiled code: coroutines and plain methods both run on the loop."""

    async def body() -> list[Any]:
        queue = asyncio.Queue()  # type: ignore[var-annotated]
        lock = asyncio.Lock()
        await _rt.dyn(queue.put_nowait, (1,), {})
        await _rt.aw(await _rt.dyn(queue.put, (2,), {}))
        got = [await _rt.aw(await _rt.dyn(queue.get, (), {})) for _ in range(2)]
        await _rt.acm_enter(lock)
        held = await _rt.dyn(lock.locked, (), {})
        await _rt.acm_exit(lock, None)
        return [got, held, lock.locked()]

    assert in_frame(body) == [[1, 2], True, False]


def test_gather_orders_results_and_raises_the_earliest_argument() -> None:
    async def body() -> list[Any]:
        slow_fail = asyncio.sleep(0.05)  # foreign, but gather awaits it through the bridge
        values = await _rt.aw(await _rt.dyn(asyncio.gather, (where("a"), slow_fail, where("b")), {}))
        outcomes = await _rt.aw(
            await _rt.dyn(asyncio.gather, (fails(), where("c")), {"return_exceptions": True})
        )
        return [values, [type(o).__name__ for o in outcomes]]

    values, outcomes = in_frame(body)
    assert values == [("nalarc-asyncio", "a"), None, ("nalarc-asyncio", "b")]
    assert outcomes == ["KeyError", "tuple"]



async def fails_after(seconds: float, key: str) -> None:
    await asyncio.sleep(seconds)
    raise KeyError(key)


def test_gather_raises_the_failure_of_the_earliest_argument_not_the_first_in_time() -> None:
    async def body() -> None:
        await _rt.aw(await _rt.dyn(asyncio.gather, (fails_after(0.05, "slow"), fails_after(0.0, "fast")), {}))

    with pytest.raises(KeyError, match="slow"):
        in_frame(body)
