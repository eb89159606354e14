"""Instance hosting: the component instances a worker serves, and how each call's code runs.

A call names its component by key (``module:qualname``) and, for an agent,
its instance; :class:`Host` resolves the key once, creates the instance on
first use, and runs the call in a fresh context on the right lane: compiled
code on the async lane (:class:`~nalarc.worker._lane.AsyncLane`), user
asyncio code on the process's asyncio loop, plain code in the calling thread.
"""

from __future__ import annotations

import contextvars
import inspect
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .. import _events
from .._api import ComponentSpec, blocks_on_futures, component_spec, instance_member, serve_instance
from .._errors import NalarcError
from .._state import StateTransaction, _instance, _session, bind_transaction
from ..runtime import lowlevel as _rt
from ..runtime.lowlevel import dump_exception, run_blocking
from ..wire import BlockingChannel, Event
from ._lane import AsyncLane

#: How a call's code runs (see :func:`code_kind`).
Function = tuple[ComponentSpec, Any, Any, str]


def encode_error(error: BaseException) -> tuple[bytes, str]:
    """The exception, pickled with its type and attributes, and its traceback as text."""
    text = "".join(traceback.format_exception(error))
    return dump_exception(error, text), text


class Host:
    """The instances of one worker, by instance id, and the code of each (instance, component, method)."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self.instances: dict[str, Any] = {}
        self.objects: dict[str, Any] = {}
        self._functions: dict[tuple[str, str, str | None], Function] = {}
        self._lane: AsyncLane | None = None
        self._lane_lock = threading.Lock()
        self._instance_lock = threading.Lock()

    @property
    def lane(self) -> AsyncLane:
        with self._lane_lock:
            if self._lane is None:
                self._lane = AsyncLane(self.channel)
            return self._lane

    def resolve(self, key: str) -> Any:
        found = self.objects.get(key)
        if found is None:
            module_name, _, qualname = key.partition(":")
            found = sys.modules[module_name] if module_name in sys.modules else __import__(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
            self.objects[key] = found
        return found

    def instance(self, instance_id: str, target: Any) -> Any:
        with self._instance_lock:
            instance = self.instances.get(instance_id)
            if instance is None:
                instance = self.instances[instance_id] = serve_instance(target)
            return instance

    def function(self, instance_id: str, key: str, method: str | None) -> Function:
        """The component, the function a call runs, and how it runs (see :func:`code_kind`)."""
        found = self._functions.get((instance_id, key, method))
        if found is None:
            target = self.resolve(key)
            spec = component_spec(target)
            assert spec is not None
            fn = instance_member(self.instance(instance_id, target), method) if spec.kind == "agent" else target
            kind = "compiled" if blocks_on_futures(spec, target, method) else code_kind(fn)
            found = self._functions[(instance_id, key, method)] = (spec, target, fn, kind)
        return found

    def preempt(self, instance_id: str, hook: str) -> None:
        instance = self.instances.get(instance_id)
        if instance is not None:
            getattr(instance, hook)()

    def call(self, function: Function, method: str | None, args: tuple[Any, ...], kwargs: dict[str, Any],
             session_id: str, request: str, instance_id: str, txn: StateTransaction | None) -> tuple[Any, Any]:
        """Run one call in a fresh context; its value, and the managed state it left (None: untouched)."""
        return contextvars.copy_context().run(
            self._in_context, function, method, args, kwargs, session_id, request, instance_id, txn)

    def _in_context(self, function: Function, method: str | None, args: tuple[Any, ...], kwargs: dict[str, Any],
                    session_id: str, request: str, instance_id: str,
                    txn: StateTransaction | None) -> tuple[Any, Any]:
        """Run one call in a fresh context (so nothing set here needs resetting)."""
        spec, target, fn, kind = function
        _instance.set(instance_id)  # which engine, cache, ... serves it (nalarc.llm)
        _session.set(session_id)
        if request:  # nalarc.stream in the call: relayed to the driver, in order, before the call's Done
            _events.current.set(_Relay(self.channel, request))
        if kind == "compiled":
            record = _rt.CallRecord(spec, target, method, args, kwargs, session_id, request, None)
            run: Callable[[], Any] = lambda: self.lane.run(fn, record)  # noqa: E731
        elif kind == "asyncio":
            run = lambda: run_blocking(fn(*args, **kwargs))  # noqa: E731 - context goes with it
        else:
            run = lambda: fn(*args, **kwargs)  # noqa: E731
        if txn is None:
            return run(), None
        with bind_transaction(txn):
            result = run()
        return result, (_rt.md_now(txn.values) if txn.touched else None)  # compiled code may leave finished futures


class _Relay:
    """A call's run channel on a worker: its events go to the driver (:class:`~nalarc.wire.Event`)."""

    __slots__ = ("channel", "request")

    def __init__(self, channel: BlockingChannel, request: str) -> None:
        self.channel, self.request = channel, request

    def emit(self, event: str, data: Any) -> None:
        self.channel.send(Event(self.request, event, data))

    def interrupt(self, payload: Any) -> Any:
        raise NalarcError("nalarc.interrupt() pauses the workflow itself: call it in the workflow, "
                          "not in a component running on a worker")


def code_kind(fn: Any) -> str:
    """``compiled`` (trio code: the async lane; also compiled sync code that blocks on
    futures, which the lane runs in a thread of its frame), ``asyncio`` (user ``async def``:
    the asyncio loop), or ``sync`` (a plain function: this thread)."""
    if _rt.compiled_kind(fn) is not None:
        return "compiled"
    return "asyncio" if inspect.iscoroutinefunction(fn) else "sync"
