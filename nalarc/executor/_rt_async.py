"""The runtime for code the program wrote ``async def``: ``await``, tasks, asyncio's functions.

Generated code reaches these through :mod:`nalarc.executor._rt` (its
``__all__``).  Three kinds of awaitables meet in compiled async code:

Future (:class:`~nalarc.executor._rt.Pending`)
    A component call.  One made to a component written ``async def`` is
    *lazy* (flag :data:`~nalarc.ir.AWAIT`): in plain Python the call only
    makes a coroutine, which runs, and raises, where it is awaited.  So its
    failure surfaces only where it is awaited (never at a settle), and only
    after the failures of the synchronous calls made before that point.
Native coroutine
    A coroutine of compiled code (its code object is marked by the
    ``compiled``/``compiled_async`` decorators the code generator adds) or of
    this module (``asyncio.sleep`` on trio): awaited natively on trio, in the
    same frame when awaited directly, in a child frame of its own when it runs
    concurrently (``gather``, ``create_task``), so each has its own program order.
Foreign awaitable
    Anything else (a coroutine of an asyncio library, an asyncio future):
    awaited on the process's asyncio loop thread (:mod:`._asyncio_bridge`),
    after earlier calls settle, as for any effect.

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
import contextlib
import functools
import inspect
import math
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

import trio

from ..ir import AWAIT
from ._asyncio_bridge import await_in_loop, call_in_loop, get_loop
from ._rt import (
    Frame,
    Pending,
    Runtime,
    _RegionIter,
    current_frame,
    enter_frame,
    leave_frame,
    m,
    md,
    reconcile,
    settle,
    stop_iteration_of,
)

F = TypeVar("F", bound=Callable[..., Any])

# --------------------------------------------------------------------------
# Compiled functions are marked, never guessed from iscoroutinefunction
# --------------------------------------------------------------------------

#: Compiled from a synchronous function: its callers await it at once (calling it runs it).
CALL: Final = "call"
#: Compiled from an ``async def``: calling it makes a coroutine, awaited where the program says.
COROUTINE: Final = "coroutine"
_MARK: Final = "__nalarc_compiled__"
#: Code objects whose coroutines / async generators are trio code (compiled, or this module's).
_NATIVE_CODE: set[types.CodeType] = set()


def _mark(fn: F, kind: str) -> F:
    code = getattr(fn, "__code__", None)
    if code is not None:
        _NATIVE_CODE.add(code)
    try:
        setattr(fn, _MARK, kind)
    except (AttributeError, TypeError):
        pass
    return fn


def compiled(fn: F) -> F:
    """Mark a function the compiler made ``async def`` (it was synchronous)."""
    return _mark(fn, CALL)


def compiled_async(fn: F) -> F:
    """Mark an ``async def`` the compiler compiled (the program wrote it async)."""
    return _mark(fn, COROUTINE)


def compiled_kind(fn: Any) -> str | None:
    """:data:`CALL`, :data:`COROUTINE`, or None for code nalarc did not compile."""
    kind = getattr(fn, _MARK, None)
    return kind if kind == CALL or kind == COROUTINE else None


def _native(fn: F) -> F:
    """This module's coroutine functions: their coroutines are awaited on trio."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        _NATIVE_CODE.add(code)
    return fn


def is_native_coroutine(x: Any) -> bool:
    return type(x) is types.CoroutineType and x.cr_code in _NATIVE_CODE


def is_foreign_coroutine_function(fn: Any) -> bool:
    """User or library ``async def`` (not compiled): calling it only makes a coroutine."""
    if isinstance(fn, (types.BuiltinFunctionType, type)) or compiled_kind(fn) is not None:
        return False
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


_asyncio_types: dict[type, bool] = {}


def is_asyncio_bound(fn: Any) -> bool:
    """A method of an asyncio object (queue, lock, event, loop): it must run on the loop's thread."""
    owner = getattr(fn, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        return False
    cls = type(owner)
    found = _asyncio_types.get(cls)
    if found is None:
        found = _asyncio_types[cls] = any(
            (c.__module__ or "").partition(".")[0] == "asyncio" for c in cls.__mro__
        )
    return found


_await_flags: dict[tuple[Any, str | None], int] = {}


def await_flag(target: Any, method: str | None) -> int:
    """:data:`AWAIT` if the component (tool function, or agent class + method) is written async."""
    key = (target, method)
    flag = _await_flags.get(key)
    if flag is None:
        fn = getattr(target, method) if method is not None else target
        kind = compiled_kind(fn)
        written_async = kind == COROUTINE or (kind is None and inspect.iscoroutinefunction(fn))
        flag = _await_flags[key] = AWAIT if written_async else 0
    return flag


# --------------------------------------------------------------------------
# await
# --------------------------------------------------------------------------


class _NativeAwaitable:
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
    if type(x) is types.CoroutineType and x.cr_code in _NATIVE_CODE:
        return await m(await x)
    if isinstance(x, _NativeAwaitable):
        return await x.result()
    return await _await_foreign(x)


async def _await_foreign(x: Any) -> Any:
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


class Task(_NativeAwaitable):
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


def _start(x: Any, frame: Frame) -> Pending | _NativeAwaitable:
    """Make ``x`` run now, concurrently (``ensure_future``)."""
    if type(x) is Pending or isinstance(x, _NativeAwaitable):
        return x  # already running
    if is_native_coroutine(x):
        parent = frame
        return Task(frame, lambda: run_in_frame(lambda: x, parent.runtime, parent.session, parent.request, parent.top))
    return Task(frame, lambda: _await_foreign(x))


async def _outcome(x: Pending | _NativeAwaitable) -> tuple[bool, Any]:
    if type(x) is Pending:
        if not x.lazy:
            return True, await aw(x)  # raises the TypeError plain Python raises
        return await _lazy_outcome(x)
    assert isinstance(x, _NativeAwaitable)
    try:
        return True, await x.result()
    except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - an outcome
        return False, error


async def _finished(x: Pending | _NativeAwaitable) -> None:
    if type(x) is Pending:
        if not x.done():
            await x.wait()
    else:
        assert isinstance(x, _NativeAwaitable)
        await x.finished()


# --------------------------------------------------------------------------
# asyncio's functions, on trio
# --------------------------------------------------------------------------


class _Gathering(_NativeAwaitable):
    __slots__ = ("children", "return_exceptions")

    def __init__(self, children: list[Pending | _NativeAwaitable], return_exceptions: bool) -> None:
        self.children, self.return_exceptions = children, return_exceptions

    async def finished(self) -> None:
        for child in self.children:
            await _finished(child)

    async def result(self) -> list[Any]:
        results = []
        for child in self.children:  # in argument order: the earliest failure wins
            ok, outcome = await _outcome(child)
            if not ok and not self.return_exceptions:
                raise outcome
            results.append(outcome)
        return results


def gather(*aws: Any, return_exceptions: bool = False) -> _Gathering:
    """``asyncio.gather``: every argument starts now; the results come in argument order."""
    frame = current_frame()
    return _Gathering([_start(x, frame) for x in aws], return_exceptions)


def create_task(coro: Any, *, name: str | None = None, context: Any = None) -> Task:
    frame = current_frame()
    started = _start(coro, frame)
    if isinstance(started, Task):
        return started
    return Task(frame, lambda: aw(started))


def ensure_future(x: Any, *, loop: Any = None) -> Pending | _NativeAwaitable:
    return _start(x, current_frame())


def shield(x: Any) -> Task:
    """The inner awaitable runs on; cancelling the shield does not cancel it."""
    frame = current_frame()
    inner = _start(x, frame)
    return Task(frame, lambda: aw(inner))


@_native
async def sleep(delay: float, result: Any = None) -> Any:
    await trio.sleep(max(0.0, delay))
    return result


@_native
async def wait_for(x: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for``: the value of ``x``, or ``TimeoutError`` (``x`` cancelled) after ``timeout`` s."""
    if timeout is None:
        return await aw(x)
    if not (type(x) is Pending or is_native_coroutine(x) or isinstance(x, _NativeAwaitable)):
        await settle()
        return await await_in_loop(asyncio.wait_for(x, timeout))  # foreign: asyncio's own
    started = _start(x, current_frame())
    with trio.move_on_after(max(0.0, timeout)):
        return await aw(started)
    if isinstance(started, Task):
        started.cancel()
    raise TimeoutError


class _NextCompleted(_NativeAwaitable):
    __slots__ = ("receive",)

    def __init__(self, receive: trio.MemoryReceiveChannel[Pending | _NativeAwaitable]) -> None:
        self.receive = receive

    async def finished(self) -> None:
        raise TypeError("an as_completed item cannot be started on its own")

    async def result(self) -> Any:
        return await aw(await self.receive.receive())


def as_completed(aws: Iterable[Any], *, timeout: float | None = None) -> Iterator[_NextCompleted]:
    """``asyncio.as_completed``: awaitables that give the results in completion order."""
    inner = aws.it if type(aws) is _RegionIter else aws
    if asyncio.isfuture(inner) or asyncio.iscoroutine(inner):  # a generator too, before Python 3.12
        # asyncio's is a generator function: it raises when first iterated.
        return _raise_when_iterated(TypeError(f"expect an iterable of futures, not {type(inner).__name__}"))
    frame = current_frame()
    children = [_start(x, frame) for x in aws]
    send, receive = trio.open_memory_channel[Pending | _NativeAwaitable](math.inf)

    async def report(child: Pending | _NativeAwaitable) -> None:
        await _finished(child)
        send.send_nowait(child)

    for child in children:
        frame.nursery.start_soon(report, child)
    return iter([_NextCompleted(receive) for _ in children])


def _raise_when_iterated(error: Exception) -> Iterator[Any]:
    raise error
    yield  # a generator function


@_native
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

    @_native
    async def __aenter__(self) -> Timeout:
        self._scope = trio.CancelScope(deadline=self.deadline)
        self._scope.__enter__()
        return self

    @_native
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


@_native
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


@_native
async def _agen_step(step: Awaitable[Any]) -> Any:
    return await step


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
    return type(x) is types.AsyncGeneratorType and x.ag_code in _NATIVE_CODE


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

