"""Materialization: waiting for futures where Python needs their values, in program order.

``m`` (shallow) and ``md`` (deep) give values; ``settle`` waits for every future
of the frame and raises the earliest failure; ``reconcile`` swaps an exception
for the one sequential Python would have raised first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ._containers import substitute
from ._futures import AsCompleted, Pending, current_frame


async def m(x: Any) -> Any:
    """Shallow: the value of a future, anything else unchanged."""
    if type(x) is not Pending:
        return x
    if not x.done():
        await x.wait()
    if x._error is None:
        return x._value
    raise await _failure_of(x)


async def _failure_of(p: Pending) -> BaseException:
    """The exception sequential Python would raise where ``p`` is used."""
    frame = p.frame
    if frame is None or p.observed:
        assert p._error is not None
        return p._error
    await frame.wait_before(p.seq)
    first = frame.earliest_failure(p.seq + 1)
    return frame.raise_from(first if first is not None else p)


ATOMS: Final = (int, float, str, bool, type(None), bytes, complex)
ATOM_SET: Final = frozenset(ATOMS)


def has_pending(x: Any, depth: int = 0) -> bool:
    t = type(x)
    if t is Pending or t is AsCompleted:
        return True
    if t in ATOMS or depth > 64:
        return False
    if t is list or t is tuple:
        return any(has_pending(v, depth + 1) for v in x)
    if t is dict:
        return any(has_pending(v, depth + 1) for v in x.values())
    return False


async def md(x: Any) -> Any:
    """Deep: replace futures inside lists, tuples and dicts by their values.

    Lists and dicts are updated in place (a future *is* its value, so nobody
    can tell the difference, and aliases stay aliases); tuples are rebuilt.
    """
    t = type(x)
    if t is Pending:
        return await md(await m(x))
    if t in ATOMS:
        return x
    if t is list:
        for i, v in enumerate(x):
            if type(v) not in ATOMS:
                x[i] = await md(v)
        return x
    if t is dict:
        for k, v in x.items():
            if type(v) not in ATOMS:
                x[k] = await md(v)
        return x
    if t is tuple:
        if not has_pending(x):
            return x
        return tuple([await md(v) for v in x])
    if t is AsCompleted:
        # Handed to code that iterates it synchronously: values in completion order.
        return [await md(v) async for v in x]
    return x


async def md_lazy(x: Any) -> Any:
    """``md(x)`` for values compiled code takes apart (a yield, ``a, b = x``): lazy futures stay.

    A lazy future is a call of a component written ``async def``: in plain
    Python it is a coroutine, which a generator yields unrun and ``a, b = x``
    binds unrun (the consumer awaits it, or gathers it); its value would be
    something else.
    """
    t = type(x)
    if t is Pending:
        return x if x.lazy else await md_lazy(await m(x))
    if t is list:
        for i, v in enumerate(x):
            if type(v) not in ATOMS:
                x[i] = await md_lazy(v)
        return x
    if t is tuple and has_pending(x):
        return tuple([await md_lazy(v) for v in x])
    if t is dict:
        for k, v in x.items():
            if type(v) not in ATOMS:
                x[k] = await md_lazy(v)
        return x
    return await md(x)


async def settle() -> None:
    """Wait for every future of the frame; raise the earliest failure."""
    frame = current_frame()
    while True:
        waiting = [p for p in frame.outstanding if not p.done() and not p.lazy]
        if not waiting:
            break
        for p in waiting:
            await p.wait()
    first = frame.earliest_failure(frame.now())
    if first is not None:
        raise frame.raise_from(first)


async def reconcile(error: BaseException) -> BaseException:
    """The exception sequential Python would have raised instead of ``error``."""
    if not isinstance(error, Exception):
        return error  # Cancelled, KeyboardInterrupt, SystemExit: never swapped
    frame = current_frame()
    if frame.last_raised is not None and frame.last_raised[0] is error:
        point = frame.last_raised[1]
    else:
        point = frame.now()
    await frame.wait_before(point)
    first = frame.earliest_failure(point)
    if first is None:
        return error
    return frame.raise_from(first)


async def settled(x: Any) -> Any:
    """``return x`` inside a try body: failures must surface inside the body."""
    await settle()
    return x


def push_try() -> None:
    """Entering a compiled ``try`` / ``with`` body (after the entry settle)."""
    current_frame().try_depth += 1


def exit_try() -> None:
    current_frame().try_depth -= 1


def all_done(x: Any, depth: int = 0) -> bool:
    t = type(x)
    if t is Pending:
        return x.done() and x._error is None and all_done(x._value, depth + 1)
    if t is list or t is tuple:
        return all(all_done(v, depth + 1) for v in x)
    if t is dict:
        return all(all_done(v, depth + 1) for v in x.values())
    return t is not AsCompleted


def md_now(x: Any) -> Any:
    """``md`` for values that are all ready: needs no waiting, so no thread."""
    t = type(x)
    if t is Pending:
        return md_now(x._value)
    if t is list:
        x[:] = [md_now(v) for v in x]
        return x
    if t is dict:
        for k, v in x.items():
            x[k] = md_now(v)
        return x
    if t is tuple:
        return tuple(md_now(v) for v in x)
    return x


def with_values(x: Any, value: Callable[[Pending], Any]) -> Any:
    """``x`` with every future ``p`` in it replaced by ``value(p)`` (containers copied, not changed)."""
    return substitute(x, Pending, value)
