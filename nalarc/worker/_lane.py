"""Compiled (async) component code in a worker: one trio loop in a thread of its own.

The component calls that code makes go back to the driver (:class:`RemoteBackend`:
a :class:`~nalarc.wire.Call` out, a :class:`~nalarc.wire.Result` back).
:func:`frame_entry` and :func:`run_frame` are how any host (this lane, the
driver's in-process backend) runs compiled code in a frame of its own.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle
import trio

from .._api import ComponentSpec
from .._errors import RemoteError
from ..runtime import lowlevel as _rt
from ..wire import BlockingChannel, Call


def frame_entry(fn: Any, runtime: _rt.Runtime) -> Any:
    """``fn`` as the async function a frame runs: synchronous code goes to a thread
    (it blocks, on I/O or on futures through ``trio.from_thread``)."""
    if inspect.iscoroutinefunction(fn):
        return fn

    async def in_thread(*args: Any, **kwargs: Any) -> Any:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=runtime.thread_limiter, abandon_on_cancel=True
        )

    return in_thread


async def run_frame(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    runtime: _rt.Runtime,
    session_id: str,
    request_id: str,
    top: bool = False,
) -> Any:
    """Run compiled async code in a frame of its own; return its deep value."""
    return await _rt.run_in_frame(lambda: fn(*args, **kwargs), runtime, session_id, request_id, top)


class AsyncLane:
    """One trio loop, in its own thread, for compiled (async) component code."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.backend = RemoteBackend(channel)
        self.runtime = _rt.Runtime(self.backend)
        ready = threading.Event()
        self.token: Any = None

        def loop() -> None:
            async def main() -> None:
                self.token = trio.lowlevel.current_trio_token()
                ready.set()
                await trio.sleep_forever()

            trio.run(main)

        threading.Thread(target=loop, name="nalarc-async", daemon=True).start()
        ready.wait()

    def run(self, fn: Callable[..., Any], record: Any) -> Any:
        async def body() -> Any:
            return await run_frame(frame_entry(fn, self.runtime), record.args, record.kwargs, self.runtime,
                                   record.session, record.request)

        return trio.from_thread.run(body, trio_token=self.token)

    def deliver(self, sub_id: int, ok: bool, payload: Any) -> None:
        trio.from_thread.run_sync(self.backend.deliver, sub_id, ok, payload, trio_token=self.token)


class RemoteBackend:
    """Component calls made by compiled code in this worker: the driver schedules them."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self._ids = itertools.count(1)
        self.waiting: dict[int, tuple[trio.Event, list[Any]]] = {}

    async def execute(self, call: Any) -> Any:
        sub_id = next(self._ids)
        done, box = trio.Event(), list[Any]()
        self.waiting[sub_id] = (done, box)
        message = Call(sub_id, call.target, call.method, call.stage << _rt.STAGE_SHIFT, call.args, call.kwargs,
                       call.session, call.request)
        self.channel.send(message)  # a short blocking send; the loop can afford it
        await done.wait()
        ok, payload = box
        if ok:
            return payload
        raise cloudpickle.loads(payload)

    def deliver(self, sub_id: int, ok: bool, payload: Any) -> None:
        done, box = self.waiting.pop(sub_id)
        box += [ok, payload]
        done.set()

    def run_inline(self, spec: ComponentSpec, target: Any, method: str | None,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str) -> Any:
        raise RemoteError("a dunder or property that calls a component cannot run inside a worker")
