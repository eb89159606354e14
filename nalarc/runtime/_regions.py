"""Regions: synchronous compiled code that may block on futures (only in worker threads).

A lambda, a generator expression or a nested ``def`` the compiler kept
synchronous uses the blocking forms (``bm``, ``bmd``, ``bcall``...), which wait
for the event loop through ``trio.from_thread``.  On the event loop thread itself
nothing can wait (see :func:`bcall`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import trio

from .._api import component_spec
from ..ir import AWAIT
from ._futures import Pending, current_frame
from ._launch import AgentHandle, call
from ._materialize import all_done, has_pending, m, md, md_lazy, md_now
from ._threads import from_thread, from_thread_async, on_trio_thread, start_anywhere


def region(fn: Any) -> Any:
    """Mark a compiled synchronous callable that may block on futures."""
    try:
        fn.__nalarc_region__ = True
    except AttributeError:
        pass
    return fn


def is_region(x: Any) -> bool:
    return isinstance(x, RegionIter) or getattr(x, "__nalarc_region__", False) is True


class RegionIter:
    """A generator made of compiled synchronous code: step it in a thread."""

    __slots__ = ("it",)

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it

    def __iter__(self) -> RegionIter:
        return self

    def __next__(self) -> Any:
        return next(self.it)

    def send(self, value: Any) -> Any:
        return self.it.send(value)  # type: ignore[attr-defined]

    def throw(self, *args: Any) -> Any:
        return self.it.throw(*args)  # type: ignore[attr-defined]

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()


def region_gen(fn: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
    """Decorate a compiled generator function whose body may block."""

    def wrapper(*args: Any, **kwargs: Any) -> RegionIter:
        return RegionIter(fn(*args, **kwargs))

    wrapper.__name__ = getattr(fn, "__name__", "gen")
    wrapper.__qualname__ = getattr(fn, "__qualname__", "gen")
    wrapper.__nalarc_region__ = True  # type: ignore[attr-defined]
    return wrapper


def region_iter(gen: Iterator[Any]) -> RegionIter:
    """A generator expression whose body may block: step it in a thread."""
    return RegionIter(gen)


class RegionCallable:
    """A callable built around a blocking callback: call it in a thread."""

    __slots__ = ("fn",)
    __nalarc_region__ = True

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def bm(x: Any) -> Any:
    """Blocking ``m``: for regions."""
    if type(x) is not Pending:
        return x
    if x.done() and x._error is None:
        return x._value
    return from_thread_async(lambda: m(x))


def bmd(x: Any) -> Any:
    """Blocking ``md``: for regions (no wait at all when everything is ready)."""
    if not has_pending(x):
        return x
    if all_done(x):
        return md_now(x)
    return from_thread_async(lambda: md(x))


def bmd_lazy(x: Any) -> Any:
    """Blocking :func:`md_lazy`."""
    if type(x) is Pending and x.lazy:
        return x
    if not has_pending(x):
        return x
    return from_thread_async(lambda: md_lazy(x))


def bcall(
    target: Any, method: str | None, flags: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A component call from synchronous compiled code.

    In a worker thread it starts a future like :func:`call`.  On the event loop
    thread (a property or dunder Python called implicitly) nothing can wait,
    so the call runs inline: the compiler warned about this fallback.
    """
    if flags & AWAIT:
        return start_anywhere(lambda: call(target, method, flags, args, kwargs))
    if on_trio_thread():
        frame = current_frame()
        spec = target.spec if isinstance(target, AgentHandle) else component_spec(target)
        assert spec is not None
        return frame.runtime.backend.run_inline(spec, target, method, bmd(args), bmd(kwargs), frame.session)
    return from_thread(lambda: call(target, method, flags, args, kwargs))


async def cm_enter(cm: Any) -> Any:
    """``__enter__`` of a compiled ``with``; in a thread if it may block."""
    enter = type(cm).__enter__
    if _cm_blocks(cm):
        return await trio.to_thread.run_sync(enter, cm)
    return enter(cm)


async def cm_exit(cm: Any, error: BaseException | None) -> bool:
    """``__exit__`` of a compiled ``with``; True if it suppressed ``error``."""
    exit_ = type(cm).__exit__
    exc_info = (type(error), error, error.__traceback__) if error is not None else (None, None, None)
    if _cm_blocks(cm):
        return bool(await trio.to_thread.run_sync(lambda: exit_(cm, *exc_info)))
    return bool(exit_(cm, *exc_info))


def _cm_blocks(cm: Any) -> bool:
    return is_region(getattr(cm, "gen", None)) or is_region(getattr(type(cm), "__enter__", None))
