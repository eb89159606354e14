"""The in-process backend: components run in the driver's own trio loop.

Sync component code runs in worker threads (it blocks on I/O); compiled async
code runs natively in a frame of its own; user asyncio code (a component written
``async def`` that nalarc left as written) runs on the process's asyncio loop
thread, awaited from trio without blocking it.  This is the embedded default for
one request from the CLI and the reference the process backend is tested
against.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import uuid
from collections.abc import Callable
from typing import Any

import trio

from .. import _telemetry
from .._api import blocks_on_futures, instance_member, serve_instance
from .._state import StateTransaction, bind_transaction, session
from ..runtime import lowlevel as _rt
from ..runtime.lowlevel import await_in_loop, run_blocking
from ..worker._lane import frame_entry as frame_entry
from ..worker._lane import run_frame as run_frame
from ._statestore import StateStore
from ._trace import Tracer, driver_pid


class InProcessBackend:
    """Runs every component call in this process."""

    def __init__(self, store: StateStore | None = None, tracer: Tracer | None = None) -> None:
        self.store = store if store is not None else StateStore(None)
        self.tracer = tracer
        #: Told every call's component, kind, queue and total seconds (``/metrics``): see ``_instance.CallObserver``.
        self.call_observer: Callable[[str, str, float, float], None] | None = None
        self._instances: dict[str, Any] = {}

    def new_runtime(self) -> _rt.Runtime:
        """Runtime state for one ``trio.run`` (instances and state outlive it)."""
        return _rt.Runtime(self)

    def _instance(self, agent_class: type, key: str) -> Any:
        instance = self._instances.get(key)
        if instance is None:
            instance = self._instances[key] = serve_instance(agent_class)
        return instance

    async def execute(self, call: _rt.CallRecord) -> Any:
        if call.span is not None:
            _telemetry.call_started(call.span, call.spec.name, "driver", 0.0)
        if self.tracer is None and self.call_observer is None:
            return await self._execute(call)
        started, ok = trio.current_time(), False
        try:
            result = await self._execute(call)
            ok = True
            return result
        finally:
            if self.call_observer is not None:
                self.call_observer(call.spec.name, call.spec.kind, 0.0, trio.current_time() - started)
            if self.tracer is not None:
                self._trace(call, started, ok)

    def _trace(self, call: _rt.CallRecord, started: float, ok: bool) -> None:
        assert self.tracer is not None
        self.tracer.call(
            future=call.future_id, label=call.label, instance=call.spec.name, process=driver_pid(),
            process_name="driver (in-process)", created=started, started=started,
            finished=trio.current_time(), session=call.session, request=call.request,
            stage=call.stage, depends_on=call.depends_on, ok=ok,
        )

    async def _execute(self, call: _rt.CallRecord) -> Any:
        directives = call.spec.directives
        attempts = 1 + directives.retries
        for attempt in range(attempts):
            try:
                if directives.timeout is None:
                    return await self._execute_once(call)
                with trio.fail_after(directives.timeout):
                    return await self._execute_once(call)
            except trio.TooSlowError:
                error: BaseException = TimeoutError(
                    f"{call.label} timed out after {directives.timeout} s"
                )
            except Exception as exc:  # noqa: BLE001 - retried or delivered
                error = exc
            if attempt + 1 == attempts:
                try:
                    raise error
                finally:
                    del error  # else the traceback (this frame's) and the error hold each other
        raise AssertionError("unreachable")

    async def _execute_once(self, call: _rt.CallRecord) -> Any:
        if call.spec.kind == "tool":
            fn = call.target
            txn = None
        else:
            agent_class = call.target.agent_class
            fn = instance_member(self._instance(agent_class, call.spec.key), call.method)
            txn = (
                StateTransaction(call.session, call.spec.key, self.store.load(call.session, call.spec.key))
                if call.spec.managed
                else None
            )
        frame = call.pending.frame if call.pending is not None else None
        assert frame is not None
        with _telemetry.activated(call.span):
            result = await run_component_code(fn, call, frame.runtime, txn)
        if txn is not None and txn.touched:
            self.store.commit(call.session, call.spec.key, await _rt.md(txn.values))
        return result

    def run_inline(
        self, spec: Any, target: Any, method: str | None,
        args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str,
    ) -> Any:
        """Run a call synchronously, here and now (the fallback for implicit code)."""
        if spec.kind == "tool":
            with session(session_id):
                return self._call_here(spec, target, None, target, args, kwargs, session_id)
        fn = instance_member(self._instance(target.agent_class, spec.key), method)
        if not spec.managed:
            with session(session_id):
                return self._call_here(spec, target, method, fn, args, kwargs, session_id)
        txn = StateTransaction(session_id, spec.key, self.store.load(session_id, spec.key))
        with bind_transaction(txn):
            result = self._call_here(spec, target, method, fn, args, kwargs, session_id)
        if txn.touched:
            self.store.commit(session_id, spec.key, txn.values)
        return result

    def _call_here(self, spec: Any, target: Any, method: str | None, fn: Any,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str) -> Any:
        """Component code run to its value on this thread, whatever kind of code it is."""
        if _rt.compiled_kind(fn) is None and not blocks_on_futures(spec, target, method):
            return _call_plain(fn, args, kwargs)
        # Compiled code needs an event loop, and this thread's is blocked in the caller:
        # run it in a loop of its own, in a thread of its own, and wait.
        context = contextvars.copy_context()
        box: list[Any] = []

        async def main() -> Any:
            runtime = self.new_runtime()
            return await run_frame(frame_entry(fn, runtime), args, kwargs, runtime, session_id, uuid.uuid4().hex)

        def in_thread() -> None:
            try:
                box.append((True, context.run(trio.run, main)))
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                box.append((False, error))

        thread = threading.Thread(target=in_thread, name="nalarc-inline")
        thread.start()
        thread.join()
        ok, value = box[0]
        if not ok:
            raise value
        return value


async def run_component_code(
    fn: Any, call: _rt.CallRecord, runtime: _rt.Runtime, txn: StateTransaction | None
) -> Any:
    """Run a component's own code with its session (and state) bound."""
    with session(call.session):
        if txn is None:
            return await _invoke(fn, call, runtime)
        with bind_transaction(txn):
            return await _invoke(fn, call, runtime)


def _call_plain(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run uncompiled component code here and now (user asyncio code: on the asyncio loop)."""
    if inspect.iscoroutinefunction(fn) and _rt.compiled_kind(fn) is None:
        return run_blocking(fn(*args, **kwargs))
    return fn(*args, **kwargs)


async def _invoke(fn: Any, call: _rt.CallRecord, runtime: _rt.Runtime) -> Any:
    if _rt.compiled_kind(fn) is not None or blocks_on_futures(call.spec, call.target, call.method):
        entry = frame_entry(fn, runtime)
        return await run_frame(entry, call.args, call.kwargs, runtime, call.session, call.request)
    if inspect.iscoroutinefunction(fn):
        # A leaf async component: user asyncio code, on the asyncio loop (context goes with it).
        return await await_in_loop(fn(*call.args, **call.kwargs))
    return await trio.to_thread.run_sync(
        functools.partial(fn, *call.args, **call.kwargs),
        limiter=runtime.thread_limiter,
        abandon_on_cancel=True,
    )


async def run_request(
    fn: Any, inputs: dict[str, Any], runtime: _rt.Runtime, session_id: str = "default",
    request_id: str | None = None, workflow: str | None = None,
) -> Any:
    """Run one workflow request to its (deep) value (``workflow``: its name, for telemetry)."""
    if _rt.compiled_kind(fn) is None and inspect.iscoroutinefunction(fn):
        # Uncompiled asyncio code (nalarc compiles every async workflow of a build).
        user = fn

        async def fn(**kwargs: Any) -> Any:
            return await await_in_loop(user(**kwargs))

    elif _rt.compiled_kind(fn) is None:
        # A workflow that calls no component compiles to plain code; it still
        # gets a frame, for the regions (generators) it may reach.
        plain = fn

        async def fn(**kwargs: Any) -> Any:
            return await trio.to_thread.run_sync(functools.partial(plain, **kwargs))

    request_id = request_id or uuid.uuid4().hex
    name = workflow if workflow is not None else str(getattr(fn, "__name__", "workflow"))
    with session(session_id), _telemetry.request_span(name, session_id, request_id):
        try:
            return await run_frame(fn, (), inputs, runtime, session_id, request_id, top=True)
        finally:
            runtime.request_done(request_id)
