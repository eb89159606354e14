"""Blocking on the event loop from a worker thread (where regions and callbacks run)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._errors import NalarcError


def on_trio_thread() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def from_thread(fn: Callable[[], Any]) -> Any:
    if on_trio_thread():
        raise NalarcError(
            "a callback that calls components was invoked by code nalarc could not see "
            "on the event loop thread; pass it directly as an argument of the call"
        )
    return trio.from_thread.run_sync(fn)


def from_thread_async(afn: Callable[[], Awaitable[Any]]) -> Any:
    if on_trio_thread():
        raise NalarcError(
            "a callback that calls components was invoked by code nalarc could not see "
            "on the event loop thread; pass it directly as an argument of the call"
        )
    return trio.from_thread.run(afn)


def start_anywhere(start: Callable[[], Any]) -> Any:
    """Start a call of an async component from blocking code (a region, or code Python runs
    implicitly on the event loop thread, as ``*`` unpacking a generator).

    In plain Python the call only makes a coroutine: nothing waits, so it needs no
    worker thread, and it is never run inline.  The future it gives is lazy: it
    fails only where it is awaited.
    """
    if on_trio_thread():
        return start()
    return trio.from_thread.run_sync(start)
