"""asyncio's functions called from compiled code, run on trio.

``asyncio.gather``, ``wait_for``, ``sleep``, ``create_task``, ``ensure_future``,
``shield``, ``as_completed``, ``to_thread``, ``timeout``, ``timeout_at``,
``get_running_loop``, ``get_event_loop`` and ``run`` called from compiled code are
looked up by identity (:data:`ASYNCIO_FUNCTIONS`) and run here on trio, since
their arguments are futures and native coroutines.  ``gather`` raises the
failure of the *earliest argument in order* (plain asyncio raises the first to
fail in time; for a deterministic app that is the same unless two fail).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

import trio

from ._async import NativeAwaitable, Task, anext_, aw, outcome_of, start_concurrently, wait_finished
from ._asyncio_bridge import await_in_loop, get_loop
from ._compiled import is_native_coroutine, native
from ._futures import Pending, current_frame
from ._materialize import md, settle
from ._regions import RegionIter


class _Gathering(NativeAwaitable):
    __slots__ = ("children", "return_exceptions")

    def __init__(self, children: list[Pending | NativeAwaitable], return_exceptions: bool) -> None:
        self.children, self.return_exceptions = children, return_exceptions

    async def finished(self) -> None:
        for child in self.children:
            await wait_finished(child)

    async def result(self) -> list[Any]:
        results = []
        for child in self.children:  # in argument order: the earliest failure wins
            ok, outcome = await outcome_of(child)
            if not ok and not self.return_exceptions:
                raise outcome
            results.append(outcome)
        return results


def gather(*aws: Any, return_exceptions: bool = False) -> _Gathering:
    """``asyncio.gather``: every argument starts now; the results come in argument order."""
    frame = current_frame()
    return _Gathering([start_concurrently(x, frame) for x in aws], return_exceptions)


def create_task(coro: Any, *, name: str | None = None, context: Any = None) -> Task:
    frame = current_frame()
    started = start_concurrently(coro, frame)
    if isinstance(started, Task):
        return started
    return Task(frame, lambda: aw(started))


def ensure_future(x: Any, *, loop: Any = None) -> Pending | NativeAwaitable:
    return start_concurrently(x, current_frame())


def shield(x: Any) -> Task:
    """The inner awaitable runs on; cancelling the shield does not cancel it."""
    frame = current_frame()
    inner = start_concurrently(x, frame)
    return Task(frame, lambda: aw(inner))


@native
async def sleep(delay: float, result: Any = None) -> Any:
    await trio.sleep(max(0.0, delay))
    return result


@native
async def wait_for(x: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for``: the value of ``x``, or ``TimeoutError`` (``x`` cancelled) after ``timeout`` s."""
    if timeout is None:
        return await aw(x)
    if not (type(x) is Pending or is_native_coroutine(x) or isinstance(x, NativeAwaitable)):
        await settle()
        return await await_in_loop(asyncio.wait_for(x, timeout))  # foreign: asyncio's own
    started = start_concurrently(x, current_frame())
    with trio.move_on_after(max(0.0, timeout)):
        return await aw(started)
    if isinstance(started, Task):
        started.cancel()
    raise TimeoutError


class _NextCompleted(NativeAwaitable):
    __slots__ = ("receive",)

    def __init__(self, receive: trio.MemoryReceiveChannel[Pending | NativeAwaitable]) -> None:
        self.receive = receive

    async def finished(self) -> None:
        raise TypeError("an as_completed item cannot be started on its own")

    async def result(self) -> Any:
        return await aw(await self.receive.receive())


def as_completed(aws: Iterable[Any], *, timeout: float | None = None) -> Iterator[_NextCompleted]:
    """``asyncio.as_completed``: awaitables that give the results in completion order."""
    inner = aws.it if type(aws) is RegionIter else aws
    if asyncio.isfuture(inner) or asyncio.iscoroutine(inner):  # a generator too, before Python 3.12
        # asyncio's is a generator function: it raises when first iterated.
        return _raise_when_iterated(TypeError(f"expect an iterable of futures, not {type(inner).__name__}"))
    frame = current_frame()
    children = [start_concurrently(x, frame) for x in aws]
    send, receive = trio.open_memory_channel[Pending | NativeAwaitable](math.inf)

    async def report(child: Pending | NativeAwaitable) -> None:
        await wait_finished(child)
        send.send_nowait(child)

    for child in children:
        frame.nursery.start_soon(report, child)
    return iter([_NextCompleted(receive) for _ in children])


def _raise_when_iterated(error: Exception) -> Iterator[Any]:
    raise error
    yield  # a generator function


@native
async def to_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    args, kwargs = await md(args), await md(kwargs)
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def get_running_loop() -> asyncio.AbstractEventLoop:
    """The loop foreign awaitables run on (scheduling compiled coroutines on it is not supported)."""
    return get_loop()


class Timeout:
    """``asyncio.timeout`` / ``timeout_at`` on trio: a cancel scope, ``TimeoutError`` when it expires."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._scope: trio.CancelScope | None = None

    def when(self) -> float:
        return self.deadline

    @native
    async def __aenter__(self) -> Timeout:
        self._scope = trio.CancelScope(deadline=self.deadline)
        self._scope.__enter__()
        return self

    @native
    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        assert self._scope is not None
        swallowed = self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught:
            raise TimeoutError from exc
        return bool(swallowed)


def timeout(delay: float | None) -> Timeout:
    return Timeout(math.inf if delay is None else trio.current_time() + delay)


def timeout_at(when: float | None) -> Timeout:
    if when is None:
        return Timeout(math.inf)
    return Timeout(trio.current_time() + (when - get_loop().time()))


async def run(main: Any, *, debug: bool | None = None) -> Any:
    """``asyncio.run(main)`` from (compiled) synchronous code: the value of ``main``."""
    return await aw(main)


#: Called from compiled code, these give their value, not an awaitable (``dyn`` awaits them).
ASYNCIO_BLOCKING: Final[dict[Any, Callable[..., Awaitable[Any]]]] = {asyncio.run: run}

#: asyncio's functions (and ``anext``) as compiled code calls them (looked up by identity in ``dyn``).
ASYNCIO_FUNCTIONS: Final[dict[Any, Callable[..., Any]]] = {
    asyncio.gather: gather,
    asyncio.wait_for: wait_for,
    asyncio.sleep: sleep,
    asyncio.create_task: create_task,
    asyncio.ensure_future: ensure_future,
    asyncio.shield: shield,
    asyncio.as_completed: as_completed,
    asyncio.to_thread: to_thread,
    asyncio.timeout: timeout,
    asyncio.timeout_at: timeout_at,
    asyncio.get_running_loop: get_running_loop,
    asyncio.get_event_loop: get_running_loop,
    anext: anext_,
}
