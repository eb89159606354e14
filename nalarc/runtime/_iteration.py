"""Iteration and intrinsics: what compiled loops iterate over, ``StopIteration`` carried
out of runtime coroutines, and ``nalarc.value`` / ``available`` / ``as_completed`` /
``current_session`` in compiled code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import trio

from ._futures import AsCompleted, Pending, current_frame
from ._materialize import m, md
from ._regions import RegionIter, bm


class _SyncAsyncIter:
    __slots__ = ("it",)

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it

    def __aiter__(self) -> _SyncAsyncIter:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self.it)
        except StopIteration:
            raise StopAsyncIteration from None


class _ThreadAsyncIter(_SyncAsyncIter):
    """Steps a region iterator in a worker thread (it may block on futures)."""

    async def __anext__(self) -> Any:
        sentinel = _DONE
        item = await trio.to_thread.run_sync(next, self.it, sentinel)
        if item is sentinel:
            raise StopAsyncIteration
        return item


_DONE: Final = object()


class _UnpackingAsyncIter:
    """Materializes each element first: the loop target unpacks it."""

    __slots__ = ("inner",)

    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self.inner = inner

    def __aiter__(self) -> _UnpackingAsyncIter:
        return self

    async def __anext__(self) -> Any:
        return await md(await self.inner.__anext__())


async def iterate(items: list[Any]) -> Iterator[Any]:
    """What a component gets for ``tool(f(x) for x in xs)``: an iterator over the
    values (a generator cannot cross processes; a list iterator can)."""
    return iter(await md(items))


def biter_unpack(iterable: Any) -> Iterator[Any]:
    """``for a, b in xs`` in synchronous compiled code (a region): each element is
    waited for before the target unpacks it."""
    for x in iterable:
        yield bm(x) if type(x) is Pending else x


def aiter_unpack(iterable: Any) -> AsyncIterator[Any]:
    """``for a, b in xs`` in compiled code."""
    return _UnpackingAsyncIter(aiter(iterable))


def aiter(iterable: Any) -> AsyncIterator[Any]:
    """What a compiled ``for`` loop iterates over (``iterable`` is materialized)."""
    if isinstance(iterable, AsCompleted):
        return iterable
    if isinstance(iterable, RegionIter):
        return _ThreadAsyncIter(iterable)
    return _SyncAsyncIter(iter(iterable))


# --------------------------------------------------------------------------
# StopIteration out of runtime coroutines
# --------------------------------------------------------------------------


class Stopped(Exception):
    """``StopIteration`` from uncompiled code, on its way through runtime coroutines."""

    def __init__(self, error: StopIteration) -> None:
        super().__init__(*error.args)
        self.error = error


def plain_call(fn: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except StopIteration as error:
        raise Stopped(error) from None


class Raised:
    """An exception carried out of a runtime coroutine as a value.

    A ``StopIteration`` may not leave a coroutine (PEP 479 turns it into a
    ``RuntimeError``), yet ``next(it)`` in a workflow must raise it where the
    workflow can catch it.  The call site unwraps it with :func:`v`, in the
    workflow's own frame.
    """

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def v(result: Any) -> Any:
    """Raise what :func:`dyn_next` carried out; else the result."""
    if type(result) is Raised:
        raise result.error
    return result


def stop_iteration_of(error: BaseException) -> BaseException:
    """The ``StopIteration`` PEP 479 wrapped when it left compiled code, else ``error``."""
    if type(error) is Stopped:
        return error.error
    cause = error.__cause__
    if type(error) is RuntimeError and isinstance(cause, StopIteration) and "raised StopIteration" in str(error):
        return cause
    return error


# --------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------


async def as_completed(xs: Iterable[Any]) -> AsCompleted:
    return AsCompleted(list(await m(xs)))


async def available(x: Any) -> bool:
    return type(x) is not Pending or x.done()


async def value(x: Any, timeout: float | None = None) -> Any:
    if timeout is None:
        return await md(x)
    with trio.fail_after(timeout):
        if type(x) is Pending:
            await x.wait()
    return await md(x)


async def session_id() -> str:
    """``nalarc.current_session()`` in compiled code."""
    return current_frame().session


def _intrinsics() -> dict[Any, Callable[..., Awaitable[Any]]]:
    from .. import _intrinsics as plain
    from .. import _state

    return {
        plain.available: available,
        plain.value: value,
        plain.as_completed: as_completed,
        _state.current_session: session_id,
    }


INTRINSICS: Final = _intrinsics()
