"""The runtime for code the program wrote ``async def``: ``await``, tasks, ``async for`` / ``with``.

Three kinds of awaitables meet in compiled async code:

Future (:class:`~._futures.Pending`)
    A component call.  One made to a component written ``async def`` is
    *lazy* (flag :data:`~nalarc.ir.AWAIT`): in plain Python the call only
    makes a coroutine, which runs, and raises, where it is awaited.  So its
    failure surfaces only where it is awaited (never at a settle), and only
    after the failures of the synchronous calls made before that point.
Native coroutine
    A coroutine of compiled code (its code object is marked by the
    ``compiled``/``compiled_async`` decorators the code generator adds) or of
    the runtime (``asyncio.sleep`` on trio): awaited natively on trio, in the
    same frame when awaited directly, in a child frame of its own when it runs
    concurrently (``gather``, ``create_task``), so each has its own program order.
Foreign awaitable
    Anything else (a coroutine of an asyncio library, an asyncio future):
    awaited on the process's asyncio loop thread (:mod:`._asyncio_bridge`),
    after earlier calls settle, as for any effect.

asyncio's own functions, on trio, are in :mod:`._asyncio_functions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import trio

from ._asyncio_bridge import await_in_loop, call_in_loop
from ._compiled import NATIVE_CODE, is_native_coroutine, native
from ._futures import Frame, Pending, Runtime, enter_frame, leave_frame
from ._iteration import stop_iteration_of
from ._materialize import m, md, reconcile, settle

# --------------------------------------------------------------------------
# await
# --------------------------------------------------------------------------


class NativeAwaitable:
    """An awaitable this runtime made (a task, a gather): awaited on trio."""

    __slots__ = ()

    async def result(self) -> Any:
        raise NotImplementedError

    async def finished(self) -> None:
        """Wait until it is done, without raising its failure."""
        raise NotImplementedError


async def aw(x: Any) -> Any:
    """``await x`` in compiled code."""
    if type(x) is Pending:
        return await _await_future(x)
    if type(x) is types.CoroutineType and x.cr_code in NATIVE_CODE:
        return await m(await x)
    if isinstance(x, NativeAwaitable):
        return await x.result()
    return await await_foreign(x)


async def await_foreign(x: Any) -> Any:
    await settle()  # it may have effects: earlier calls first, as for any opaque call
    return await await_in_loop(x)


async def _await_future(p: Pending) -> Any:
    if not p.lazy:
        value = await m(p)  # a synchronous component's value: plain Python cannot await it
        raise TypeError(f"object {type(value).__name__} can't be used in 'await' expression")
    ok, outcome = await _lazy_outcome(p)
    if ok:
        return outcome
    raise outcome


async def _lazy_outcome(p: Pending) -> tuple[bool, Any]:
    """``(True, value)`` or ``(False, error)`` of a lazy future, where the program awaits it.

    Synchronous calls made before this point ran before it in plain Python:
    the earliest of their failures is raised instead (not returned).
    """
    if not p.done():
        await p.wait()
    error = p._error
    if error is None:
        return True, p._value
    frame = p.frame
    if frame is not None:
        point = frame.now()
        await frame.wait_before(point)
        first = frame.earliest_failure(point)
        if first is not None:
            raise frame.raise_from(first)
        frame.last_raised = (error, point)
    p.observed = True
    return False, error


# --------------------------------------------------------------------------
# Frames for coroutines that run concurrently, and tasks
# --------------------------------------------------------------------------

#: Tasks started in each frame: those still running when it ends are cancelled (as asyncio.run does).
_frame_tasks: weakref.WeakKeyDictionary[Frame, list[Task]] = weakref.WeakKeyDictionary()


async def run_in_frame(
    body: Callable[[], Awaitable[Any]], runtime: Runtime, session_id: str, request_id: str, top: bool = False
) -> Any:
    """Run compiled code in a frame of its own; return its deep value (or raise, reconciled)."""
    error: BaseException | None = None
    result: Any = None
    async with trio.open_nursery() as nursery:
        frame = Frame(nursery, runtime, session_id, request_id, top)
        token = enter_frame(frame)
        try:
            result = await body()
            frame.release_handled()
            result = await md(result)
            await settle()
            _finish(frame)
            nursery.cancel_scope.cancel()  # only lazy calls nobody awaited can still be running
        except Exception as exc:  # noqa: BLE001 - reconciled and re-raised below
            error = await reconcile(stop_iteration_of(exc))
            nursery.cancel_scope.cancel()
        finally:
            leave_frame(token)
    if error is not None:
        try:
            raise error
        finally:
            del error  # else the traceback (this frame's) and the error hold each other: the
            # workflow's locals would live until the next garbage collection
    return result


def _finish(frame: Frame) -> None:
    """The frame's value is known and its synchronous calls settled: what still runs is
    tasks and calls of async components nobody awaited (or ``wait_for`` gave up on).
    ``asyncio.run`` cancels such tasks when its coroutine returns, and a coroutine nobody
    awaits never runs: cancel them (a call already running on a worker finishes there,
    unseen)."""
    for task in _frame_tasks.pop(frame, ()):
        task.cancel()


class Task(NativeAwaitable):
    """``asyncio.create_task`` in compiled code: a trio task in the frame's nursery."""

    __slots__ = ("_event", "_value", "_error", "_scope", "_ended", "__weakref__")

    def __init__(self, frame: Frame, body: Callable[[], Awaitable[Any]]) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._scope = trio.CancelScope()
        self._ended = False
        _frame_tasks.setdefault(frame, []).append(self)
        frame.nursery.start_soon(self._run, body)

    async def _run(self, body: Callable[[], Awaitable[Any]]) -> None:
        try:
            with self._scope:
                self._value = await body()
                self._ended = True
        except Exception as error:  # noqa: BLE001 - kept for whoever awaits the task
            self._error, self._ended = error, True
        finally:
            if not self._ended:
                self._error = asyncio.CancelledError()
            self._ended = True
            self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        self._scope.cancel()
        return True

    def cancelled(self) -> bool:
        return self.done() and isinstance(self._error, asyncio.CancelledError)

    def exception(self) -> BaseException | None:
        if not self.done():
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._error

    async def finished(self) -> None:
        await self._event.wait()

    async def result(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        return f"<nalarc task {'done' if self.done() else 'running'}>"


def start_concurrently(x: Any, frame: Frame) -> Pending | NativeAwaitable:
    """Make ``x`` run now, concurrently (``ensure_future``)."""
    if type(x) is Pending or isinstance(x, NativeAwaitable):
        return x  # already running
    if is_native_coroutine(x):
        parent = frame
        return Task(frame, lambda: run_in_frame(lambda: x, parent.runtime, parent.session, parent.request, parent.top))
    return Task(frame, lambda: await_foreign(x))


async def outcome_of(x: Pending | NativeAwaitable) -> tuple[bool, Any]:
    if type(x) is Pending:
        if not x.lazy:
            return True, await aw(x)  # raises the TypeError plain Python raises
        return await _lazy_outcome(x)
    assert isinstance(x, NativeAwaitable)
    try:
        return True, await x.result()
    except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - an outcome
        return False, error


async def wait_finished(x: Pending | NativeAwaitable) -> None:
    if type(x) is Pending:
        if not x.done():
            await x.wait()
    else:
        assert isinstance(x, NativeAwaitable)
        await x.finished()


# --------------------------------------------------------------------------
# Stepping a compiled async generator by hand: anext(), asend(), athrow(), aclose()
# --------------------------------------------------------------------------

_NO_DEFAULT: Final = object()
#: The methods of an async generator that return an awaitable running its body.
_AGEN_STEPS: Final = frozenset({"__anext__", "asend", "athrow", "aclose"})


def anext_(iterator: Any, default: Any = _NO_DEFAULT, /) -> Any:
    """``anext(it[, default])`` in compiled code.

    For a compiled async generator the awaitable ``anext`` makes runs the
    generator's body, which is trio code: it must be awaited natively, never
    handed to the asyncio loop as a foreign awaitable (builtins' ``anext``
    awaitable is not a coroutine, so :func:`aw` could not tell).
    """
    if type(iterator) is _NativeAsyncGen:
        return _anext_native(iterator.agen, default)
    if _is_native_agen(iterator):
        return _anext_native(iterator, default)
    return anext(iterator) if default is _NO_DEFAULT else anext(iterator, default)


@native
async def _anext_native(agen: AsyncIterator[Any], default: Any) -> Any:
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        if default is _NO_DEFAULT:
            raise
        return default


def agen_step(fn: Any) -> Callable[..., Any] | None:
    """``agen.asend`` (``__anext__``, ``athrow``, ``aclose``) of a compiled async generator,
    as compiled code calls it: the awaitable it makes is awaited natively (see :func:`anext_`)."""
    owner = getattr(fn, "__self__", None)
    if owner is None or getattr(fn, "__name__", "") not in _AGEN_STEPS:
        return None
    if type(owner) is _NativeAsyncGen:
        native: Callable[..., Any] = fn  # its steps are native coroutines already
        return native
    if _is_native_agen(owner):
        return lambda *args, **kwargs: _agen_step(fn(*args, **kwargs))
    return None


@native
async def _agen_step(step: Awaitable[Any]) -> Any:
    return await step


# --------------------------------------------------------------------------
# async for, async with, async generators
# --------------------------------------------------------------------------


class _NativeAsyncGen:
    """An async generator expression of compiled code (its code object cannot be marked)."""

    __slots__ = ("agen",)

    def __init__(self, agen: AsyncIterator[Any]) -> None:
        self.agen = agen

    def __aiter__(self) -> _NativeAsyncGen:
        return self

    # Each step runs the generator's body, which is trio code: a native coroutine.
    def __anext__(self) -> Any:
        return _agen_step(self.agen.__anext__())

    def asend(self, value: Any) -> Any:
        return _agen_step(self.agen.asend(value))  # type: ignore[attr-defined]

    def athrow(self, *args: Any) -> Any:
        return _agen_step(self.agen.athrow(*args))  # type: ignore[attr-defined]

    def aclose(self) -> Any:
        return _agen_step(self.agen.aclose())  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agen, name)  # ag_running, ag_frame...


def native_agen(agen: AsyncIterator[Any]) -> _NativeAsyncGen:
    return _NativeAsyncGen(agen)


class _ForeignAsyncIter:
    """``async for`` over an async iterator nalarc did not compile: each step through :func:`aw`."""

    __slots__ = ("it",)

    def __init__(self, it: Any) -> None:
        self.it = it

    def __aiter__(self) -> _ForeignAsyncIter:
        return self

    async def __anext__(self) -> Any:
        return await aw(self.it.__anext__())


def _is_native_agen(x: Any) -> bool:
    return type(x) is types.AsyncGeneratorType and x.ag_code in NATIVE_CODE


def aiter_async(iterable: Any) -> AsyncIterator[Any]:
    """What a compiled ``async for`` the program wrote iterates over."""
    if _is_native_agen(iterable):
        return iterable  # type: ignore[no-any-return]
    if type(iterable) is _NativeAsyncGen:
        return iterable.agen
    it = type(iterable).__aiter__(iterable)
    if _is_native_agen(it):
        return it  # type: ignore[no-any-return]  # e.g. a class whose __aiter__ returns a compiled async generator
    return _ForeignAsyncIter(it)


def _native_cm(cm: Any) -> bool:
    """``@asynccontextmanager`` over a compiled async generator: contextlib only awaits the generator."""
    return isinstance(cm, contextlib.AbstractAsyncContextManager) and _is_native_agen(getattr(cm, "gen", None))


async def acm_enter(cm: Any) -> Any:
    """``__aenter__`` of a compiled ``async with``."""
    entered = type(cm).__aenter__(cm)
    if _native_cm(cm):
        return await entered
    return await aw(entered)


async def acm_exit(cm: Any, error: BaseException | None) -> bool:
    """``__aexit__`` of a compiled ``async with``; True if it suppressed ``error``."""
    exc_info = (type(error), error, error.__traceback__) if error is not None else (None, None, None)
    exited = type(cm).__aexit__(cm, *exc_info)
    if _native_cm(cm):
        return bool(await exited)
    return bool(await aw(exited))


async def call_asyncio_bound(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A synchronous method of an asyncio object, on the loop's thread."""
    return await call_in_loop(fn, *args, **kwargs)
