"""The process's asyncio event loop, in a thread of its own, for user asyncio code.

Most LLM SDKs and HTTP clients are asyncio libraries (``AsyncOpenAI``,
``httpx.AsyncClient``): their coroutines, futures, locks and queues must run on
an asyncio loop, and keep running on the *same* loop (a client's connection
pool is bound to the loop it first ran on).  nalarc's own code runs on trio,
so every process (the driver, a worker process, a Ray actor) owns one asyncio
loop, started lazily in a daemon thread, and hands user asyncio code to it:

* from trio, :func:`await_in_loop` awaits an awaitable on the loop without
  blocking trio: the asyncio task's done callback wakes the trio task through
  its trio token (no thread waits);
* from a plain thread (a worker's call thread), :func:`run_blocking` runs a
  coroutine on the loop and blocks the calling thread until it is done;
* :func:`call_in_loop` runs a synchronous function on the loop thread (asyncio
  objects are not thread-safe: ``queue.put_nowait``, ``event.set``).

The caller's context variables (session, managed-state transaction, instance)
go with the coroutine: its task runs in a copy of the caller's context.
Exceptions come back as the original exception object, with its traceback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import sniffio
import trio

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def get_loop() -> asyncio.AbstractEventLoop:
    """This process's asyncio loop (started on first use; a forked child starts its own)."""
    global _loop, _loop_pid
    loop = _loop
    if loop is not None and _loop_pid == os.getpid():
        return loop
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = _start_loop(), os.getpid()
        return _loop


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=run, name="nalarc-asyncio", daemon=True).start()
    ready.wait()
    return loop


def on_loop_thread() -> bool:
    """Is the calling thread this process's asyncio loop thread?"""
    loop = _loop
    if loop is None:
        return False
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _caller_context() -> contextvars.Context:
    """The caller's context variables, minus a sniffio override (the task runs under asyncio)."""
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    return context


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if asyncio.iscoroutine(awaitable):
        return awaitable
    return _await(awaitable)  # a future of this loop, or any object with __await__


class _Handoff:
    """One awaitable handed from trio to the asyncio loop."""

    __slots__ = ("task", "cancelled", "done")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.done = trio.Event()


async def await_in_loop(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on the asyncio loop, from trio, without blocking trio.

    Cancelling the trio side cancels the asyncio task.
    """
    loop = get_loop()
    token = trio.lowlevel.current_trio_token()
    context = _caller_context()
    handoff = _Handoff()

    def wake(_: asyncio.Task[Any]) -> None:
        try:
            token.run_sync_soon(handoff.done.set)
        except trio.RunFinishedError:
            pass  # nobody waits any more

    def start() -> None:
        if handoff.cancelled:
            _close(awaitable)
            return
        task = loop.create_task(_as_coroutine(awaitable), context=context)
        handoff.task = task
        task.add_done_callback(wake)

    loop.call_soon_threadsafe(start)
    try:
        await handoff.done.wait()
    except BaseException:
        loop.call_soon_threadsafe(_cancel, handoff)
        raise
    assert handoff.task is not None
    return handoff.task.result()  # type: ignore[no-any-return]


def _cancel(handoff: _Handoff) -> None:
    handoff.cancelled = True
    if handoff.task is not None:
        handoff.task.cancel()


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if asyncio.iscoroutine(awaitable) and close is not None:
        close()  # never started: no "coroutine was never awaited" warning


async def call_in_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the loop thread (asyncio objects are not thread-safe), from trio."""

    async def call() -> T:
        return fn(*args, **kwargs)

    return await await_in_loop(call())


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the asyncio loop; block the calling (non-loop) thread until it is done."""
    if on_loop_thread():
        coroutine.close()
        raise RuntimeError("run_blocking was called on the asyncio loop thread: it would wait for itself")
    loop = get_loop()
    context = _caller_context()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def finished(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            result.set_exception(asyncio.CancelledError())
            return
        error = task.exception()
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())

    def start() -> None:
        loop.create_task(coroutine, context=context).add_done_callback(finished)

    loop.call_soon_threadsafe(start)
    return result.result()
