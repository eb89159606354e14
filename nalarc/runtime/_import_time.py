"""Compiled code called where no request runs: module-level code, at import time.

``BANNER = join(["a", "b"])`` at module level calls ``join``, which the compiler
made ``async def`` because a workflow reaches it.  Python runs that line when
the module is imported (in the driver, and in every worker process), with no
event loop and no request.  :func:`run_sync` runs such a call to its value the
way plain Python would: on a trio loop of its own, in a frame whose component
calls run right here, as plain calls (a tool function is called, an agent
method runs on a per-process instance), exactly what ``python app.py`` does at
import.  The code generator emits it for module-level calls of names that may
hold compiled code; for anything else it is a plain call.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from typing import Any

import trio

from .._api import instance_member, serve_instance
from ._async import run_in_frame
from ._asyncio_bridge import await_in_loop
from ._compiled import CALL, compiled_kind
from ._futures import CallRecord, Runtime, current_frame, frame_var


def run_sync(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` from uncompiled code (a module's top level): its value."""
    if compiled_kind(fn) != CALL or frame_var.get() is not None:
        return fn(*args, **kwargs)

    async def main() -> Any:
        runtime = Runtime(_ImportTimeBackend())
        return await run_in_frame(lambda: fn(*args, **kwargs), runtime, "default", uuid.uuid4().hex)

    return trio.run(main)


class _ImportTimeBackend:
    """Component calls made while a module is imported: plain calls, here and now."""

    def __init__(self) -> None:
        self._instances: dict[type, Any] = {}

    async def execute(self, call: CallRecord) -> Any:
        fn = self._function(call)
        if compiled_kind(fn) is not None:
            runtime = current_frame().runtime
            return await run_in_frame(lambda: fn(*call.args, **call.kwargs), runtime, call.session, call.request)
        if inspect.iscoroutinefunction(fn):
            return await await_in_loop(fn(*call.args, **call.kwargs))
        return await trio.to_thread.run_sync(functools.partial(fn, *call.args, **call.kwargs))

    def run_inline(self, spec: Any, target: Any, method: str | None,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str) -> Any:
        return self._function(CallRecord(spec, target, method, args, kwargs, session_id, "", None))(*args, **kwargs)

    def _function(self, call: CallRecord) -> Any:
        if call.spec.kind == "tool":
            return call.target
        agent_class = call.target.agent_class
        instance = self._instances.get(agent_class)
        if instance is None:
            instance = self._instances[agent_class] = serve_instance(agent_class)
        return instance_member(instance, call.method)
