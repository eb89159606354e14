"""The runtime that compiled code calls: futures, materialization, dispatch.

Generated modules do ``from nalarc.executor import _rt as _nalarc_rt`` and use
only the functions in ``__all__``.  The vocabulary:

Frame
    One execution of compiled code with its own futures: a workflow request
    in the driver, or one component call.  Every future started in the frame
    gets a sequence number in program order; *settling* waits for all of them
    and raises the earliest failure, which is exactly the exception
    sequential Python would have raised first.
Pending
    A future: a component call's result that may not be ready yet.  Its value
    is immutable once set.
Region
    Synchronous compiled code (a lambda, a generator expression, a nested
    ``def``) that may need to block on a future.  Regions only run in worker
    threads, where blocking goes through ``trio.from_thread``.

How a call starts (:func:`call`): one that needs no waiting goes to a
:class:`DirectBackend` from the calling task, with no task of its own, and the
backend settles its future (:func:`complete_call`); one whose inputs are
pending is *placed* by such a backend and started when its last input settles
(push readiness); anything else (ordered after earlier calls, a running
predecessor, a backend without these entries) waits in a task,
:func:`_run_call`.  All three fail a call whose input failed with that
input's exception, without running it.

This module is long on purpose: it is the single namespace generated code
imports (``_nalarc_rt.m``, ``.call``, ``.dyn``...), and its parts share the
``Pending`` / ``Frame`` internals on every call's hot path.

State (per frame): ``outstanding`` (futures not yet known to have succeeded,
in start order), ``try_depth`` (how many compiled ``try`` bodies enclose the
running code), ``last_raised`` (the failure most recently handed to user code).
"""

from __future__ import annotations

import builtins
import contextvars
import copy
import functools
import inspect
import itertools
import traceback
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Final, Protocol

import trio

from .._api import ATTRIBUTE_READ, ATTRIBUTE_WRITE, ComponentSpec, component_spec, is_served
from .._errors import NalarcError, NalarcInternalError
from ..ir import AWAIT as AWAIT
from ..ir import EFFECT as EFFECT  # call flags, or-ed together by the code generator
from ..ir import STAGE_SHIFT as STAGE_SHIFT
from ._containers import substitute

__all__ = [
    "AgentHandle",
    "Pending",
    "acm_enter",
    "acm_exit",
    "aiter",
    "aiter_async",
    "as_completed",
    "available",
    "aw",
    "bcall",
    "bdyn",
    "biter_unpack",
    "bm",
    "bmd",
    "bmd_lazy",
    "call",
    "compiled",
    "compiled_async",
    "dyn",
    "dyn_effect",
    "dyn_next",
    "local",
    "push_try",
    "region_iter",
    "run_sync",
    "session_id",
    "exit_try",
    "iterate",
    "m",
    "mark_pure",
    "md",
    "md_lazy",
    "native_agen",
    "reconcile",
    "region",
    "region_gen",
    "setattr_",
    "setitem",
    "setitem_effect",
    "settled",
    "settle",
    "v",
    "value",
]


class Skipped(Exception):
    """A state-writing call that never ran because an earlier call failed."""


class Backend(Protocol):
    """Where component calls execute (in-process, worker processes, Ray)."""

    async def execute(self, call: CallRecord) -> Any: ...

    def run_inline(
        self, spec: ComponentSpec, target: Any, method: str | None,
        args: tuple[Any, ...], kwargs: dict[str, Any], session: str,
    ) -> Any: ...


class DirectBackend(Backend, Protocol):
    """A backend that takes calls synchronously, without a task per call (see :func:`_start_now`).

    ``place_call`` and ``forget_call`` are optional (push readiness): a backend
    without them gets calls only once their inputs are ready.
    """

    def start_call(self, call: CallRecord) -> bool:
        """Take ``call`` now and settle it later with :func:`complete_call`; False: use ``execute``.

        A call placed by ``place_call`` comes back here when its inputs are
        ready, with its futures still in its arguments (the backend decides
        how each value reaches the worker).
        """
        ...

    def place_call(self, call: CallRecord) -> bool:
        """``call``'s inputs are not ready: choose where it will run, so their values can go there
        directly.  False: the backend declines (the call waits in a task and is routed when ready)."""
        ...

    def forget_call(self, call: CallRecord) -> None:
        """A placed call will never start (an input failed, or its frame was cancelled)."""
        ...


class CallRecord:
    """What a backend needs to run one component call."""

    __slots__ = (
        "spec", "target", "method", "args", "kwargs", "session", "request", "pending", "stage",
        "inputs", "direct", "held", "waiting", "placed", "pushes", "attempt",
    )

    def __init__(
        self,
        spec: ComponentSpec,
        target: Any,
        method: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        session: str,
        request: str,
        pending: Pending | None,
    ) -> None:
        self.spec, self.target, self.method = spec, target, method
        self.args, self.kwargs = args, kwargs
        self.session, self.request, self.pending = session, request, pending
        #: Depth in the app's call graph (from the compiler; 0 if unknown).
        self.stage = 0
        #: The futures its arguments held.
        self.inputs: list[Pending] = []
        #: Started by :func:`_start_now`: the backend settles it with :func:`complete_call`.
        self.direct = False
        #: The request and session slots it holds while it runs (direct calls only).
        self.held: tuple[trio.CapacityLimiter, ...] = ()
        #: Inputs not yet done, for a call placed before they were (see :func:`_wait_for_inputs`).
        self.waiting = 0
        #: The backend's own records (push readiness): where a placed call will
        #: run, and where this call's value goes when it is done.  Any: each
        #: backend defines them; the runtime only carries them.
        self.placed: Any = None
        self.pushes: Any = None
        #: Where the backend sent it last (its own handle for that attempt).
        self.attempt: Any = None

    @property
    def future_id(self) -> str:
        """``<frame>:<sequence>`` of this call's future ("" for a call made in a worker)."""
        pending = self.pending
        if pending is None or pending.frame is None:
            return ""
        return f"{pending.frame.id}:{pending.seq}"

    @property
    def depends_on(self) -> list[str]:
        """Ids of the futures this call waited for (for the trace)."""
        return [f"{p.frame.id if p.frame else '?'}:{p.seq}" for p in self.inputs]

    @property
    def label(self) -> str:
        return self.spec.name + (f".{self.method}" if self.method else "")


class Pending:
    """A future.  Compiled code never exposes it to uncompiled code."""

    __slots__ = (
        "_done", "_event", "_callbacks", "_value", "_error", "seq", "frame", "label", "observed", "call",
        "lazy", "__weakref__",
    )

    def __init__(self, frame: Frame | None, seq: int, label: str) -> None:
        self._done = False
        #: Made by the first task that waits (most futures are ready before anyone looks).
        self._event: trio.Event | None = None
        #: Run when the future settles (calls placed before their inputs were ready).
        self._callbacks: list[Callable[[], None]] | None = None
        #: The component call that produces it.
        self.call: CallRecord | None = None
        self._value: Any = None
        self._error: BaseException | None = None
        self.seq, self.frame, self.label = seq, frame, label
        #: Its failure was handed to user code, or it is a phantom: a call
        #: sequential Python never made because an earlier one raised.
        self.observed = False
        #: A call of a component written ``async def`` (:data:`AWAIT`): plain Python runs it
        #: only where it is awaited, so it fails only there (:func:`aw`), never at a settle.
        self.lazy = False

    def __deepcopy__(self, memo: dict[int, Any]) -> Pending:
        return self  # a future is immutable: snapshots share it

    def __repr__(self) -> str:
        state = "failed" if self._error else ("done" if self._done else "pending")
        return f"<nalarc future #{self.seq} {self.label} {state}>"

    def done(self) -> bool:
        return self._done

    def failed(self) -> bool:
        return self._error is not None

    def set_value(self, value: Any) -> None:
        assert not self._done, "a future's value is immutable once set"
        self._value = value
        self._done = True
        if self._event is not None:
            self._event.set()
        if self._callbacks is not None:
            self._run_callbacks()

    def set_error(self, error: BaseException) -> None:
        assert not self._done, "a future's value is immutable once set"
        self._error = error
        self._done = True
        if self._event is not None:
            self._event.set()
        if self._callbacks is not None:
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks or [], None
        for callback in callbacks:
            callback()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once this future settles (in the trio thread that settles it)."""
        if self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    async def wait(self) -> None:
        if self._done:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()

    def result(self) -> Any:
        """The value of a done future (its exception is raised, reconciled)."""
        if self._error is not None:
            raise self._error
        return self._value


class Frame:
    """One execution of compiled code: a request, or one component call."""

    def __init__(
        self, nursery: trio.Nursery, runtime: Runtime, session: str, request: str, top: bool = False
    ) -> None:
        self.nursery, self.runtime = nursery, runtime
        self.session, self.request = session, request
        #: Unique in this process: futures are ``<frame id>:<sequence number>``.
        self.id = f"{request[:8]}.{next(_frame_numbers)}"
        #: The request's own frame (the workflow): its calls count against the caps.
        #: Calls made by components do not, so a parent never starves its children.
        self.top = top
        self.outstanding: list[Pending] = []
        self.try_depth = 0
        self.last_raised: tuple[BaseException, int] | None = None
        #: Failures handed to user code (see :meth:`release_handled`).
        self.handed: list[BaseException] = []
        self.started = 0

    def next_seq(self) -> int:
        self.started += 1
        return self.started

    def now(self) -> int:
        """A sequence number later than every future started so far."""
        return self.started + 1

    async def wait_before(self, seq: int) -> None:
        for p in list(self.outstanding):
            if p.seq < seq and not p.done() and not p.lazy:
                await p.wait()

    def earliest_failure(self, before: int) -> Pending | None:
        """The earliest unobserved failed future started before ``before``."""
        best: Pending | None = None
        keep: list[Pending] = []
        for p in self.outstanding:
            if p.done() and (not p.failed() or p.observed):
                # Succeeded, or its failure was handed to user code already: forget it, and
                # so its traceback (whose frames hold the caller's locals alive: a generator
                # left half-consumed must be closed when the workflow returns, as in Python).
                continue
            keep.append(p)
            if p.seq < before and p.failed() and not p.observed and not p.lazy:
                if best is None or p.seq < best.seq:
                    best = p
        self.outstanding = keep
        return best

    def raise_from(self, pending: Pending) -> BaseException:
        """Hand ``pending``'s failure to user code; later futures become phantoms."""
        pending.observed = True
        for p in self.outstanding:
            if p.seq > pending.seq:
                p.observed = True
        error = pending._error
        assert error is not None
        self.last_raised = (error, pending.seq)
        self.handed.append(error)
        return error

    def release_handled(self) -> None:
        """The frame's code returned: let go of the locals the failures it handled hold.

        A handled exception's traceback holds the frames it passed through, and so
        their locals (the runtime's frames hold the failed future, which holds the
        exception: a cycle only the garbage collector frees).  In Python a
        half-consumed generator of the workflow's is closed when the workflow
        returns; kept alive by such a cycle, its ``finally`` would run at some
        later collection instead.  Clearing the frames (their code and line
        numbers stay, for printing) keeps Python's order.
        """
        for error in self.handed:
            traceback.clear_frames(error.__traceback__)
        self.handed.clear()
        self.last_raised = None


class Runtime:
    """Process-wide runtime state: the backend and the per-session call chains."""

    def __init__(self, backend: Backend, per_request: int = 256, per_session: int = 1024) -> None:
        self.backend = backend
        #: The backend's synchronous entries (see :class:`DirectBackend`), if it has them.
        self.start_call: Callable[[CallRecord], bool] | None = getattr(backend, "start_call", None)
        self.place_call: Callable[[CallRecord], bool] | None = getattr(backend, "place_call", None)
        self.forget_call: Callable[[CallRecord], None] | None = getattr(backend, "forget_call", None)
        #: Last call of (session, agent key) for in-order execution.
        self.chains: dict[tuple[str, str], Pending] = {}
        self.thread_limiter = trio.CapacityLimiter(256)
        #: Caps on calls executing at once for one request / one session, so
        #: that a dynamic fan-out cannot swamp the system (futures beyond the
        #: cap wait their turn; creating them never blocks the workflow).
        self.per_request, self.per_session = per_request, per_session
        self._request_slots: dict[str, trio.CapacityLimiter] = {}
        self._session_slots: dict[str, trio.CapacityLimiter] = {}

    def slots(self, session: str, request: str) -> tuple[trio.CapacityLimiter, trio.CapacityLimiter]:
        by_request = self._request_slots.get(request)
        if by_request is None:
            by_request = self._request_slots[request] = trio.CapacityLimiter(self.per_request)
        by_session = self._session_slots.get(session)
        if by_session is None:
            by_session = self._session_slots[session] = trio.CapacityLimiter(self.per_session)
        return by_request, by_session

    def request_done(self, request: str) -> None:
        self._request_slots.pop(request, None)


_frame_numbers = itertools.count(1)

_frame: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("nalarc_frame", default=None)


def current_frame() -> Frame:
    frame = _frame.get()
    if frame is None:
        raise NalarcError(
            "compiled nalarc code ran outside the runtime; run it with `nalarc run` "
            "or nalarc.executor.run_request()"
        )
    return frame


def enter_frame(frame: Frame) -> contextvars.Token[Frame | None]:
    return _frame.set(frame)


def leave_frame(token: contextvars.Token[Frame | None]) -> None:
    _frame.reset(token)


# --------------------------------------------------------------------------
# Materialization
# --------------------------------------------------------------------------


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


_ATOMS: Final = (int, float, str, bool, type(None), bytes, complex)
_ATOM_SET: Final = frozenset(_ATOMS)


def _has_pending(x: Any, depth: int = 0) -> bool:
    t = type(x)
    if t is Pending or t is _AsCompleted:
        return True
    if t in _ATOMS or depth > 64:
        return False
    if t is list or t is tuple:
        return any(_has_pending(v, depth + 1) for v in x)
    if t is dict:
        return any(_has_pending(v, depth + 1) for v in x.values())
    return False


async def md(x: Any) -> Any:
    """Deep: replace futures inside lists, tuples and dicts by their values.

    Lists and dicts are updated in place (a future *is* its value, so nobody
    can tell the difference, and aliases stay aliases); tuples are rebuilt.
    """
    t = type(x)
    if t is Pending:
        return await md(await m(x))
    if t in _ATOMS:
        return x
    if t is list:
        for i, v in enumerate(x):
            if type(v) not in _ATOMS:
                x[i] = await md(v)
        return x
    if t is dict:
        for k, v in x.items():
            if type(v) not in _ATOMS:
                x[k] = await md(v)
        return x
    if t is tuple:
        if not _has_pending(x):
            return x
        return tuple([await md(v) for v in x])
    if t is _AsCompleted:
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
            if type(v) not in _ATOMS:
                x[i] = await md_lazy(v)
        return x
    if t is tuple and _has_pending(x):
        return tuple([await md_lazy(v) for v in x])
    if t is dict:
        for k, v in x.items():
            if type(v) not in _ATOMS:
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


def exit_try() -> None:
    current_frame().try_depth -= 1


# --------------------------------------------------------------------------
# Component calls
# --------------------------------------------------------------------------


class AgentHandle:
    """What ``Planner()`` evaluates to in compiled code: a handle, not an instance.

    Its methods are component calls; its static and class methods are the
    class's own; any other attribute (set in ``__init__``, a property, a class
    attribute) is read on the instance that serves the session, as a call
    (:data:`~nalarc._api.ATTRIBUTE_READ`): a future on the event loop thread,
    the value itself in a worker thread.  ``isinstance(handle, Planner)`` holds.
    """

    __slots__ = ("agent_class", "spec")

    def __init__(self, agent_class: type, spec: ComponentSpec) -> None:
        self.agent_class, self.spec = agent_class, spec

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - isinstance() looks here after type()
        return self.agent_class

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"agent {self.spec.name!r} handle has no attribute {name!r}")
        kind = _member_kind(self.agent_class, name)
        if kind == "method":
            return ComponentMethod(self, name)
        if kind == "class-level":
            return getattr(self.agent_class, name)
        if _on_trio_thread():
            return call(self, ATTRIBUTE_READ, 0, (name,), {})
        return _blocking_async(lambda: m(call(self, ATTRIBUTE_READ, 0, (name,), {})))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in AgentHandle.__slots__:
            object.__setattr__(self, name, value)
        elif _on_trio_thread():
            raise NalarcError(
                f"{name!r} of agent {self.spec.name!r} was assigned by code nalarc could not see, on the "
                "event loop thread: assign it in the workflow, or in a method of the agent"
            )
        else:
            _blocking_async(lambda: m(call(self, ATTRIBUTE_WRITE, EFFECT, (name, value), {})))

    def __repr__(self) -> str:
        return f"<nalarc agent handle {self.spec.name}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (AgentHandle, (self.agent_class, self.spec))


_member_kinds: dict[tuple[type, str], str] = {}


def _member_kind(cls: type, name: str) -> str:
    """``method`` (a component call), ``class-level`` (static or class method: run
    here), or ``instance`` (read on the serving instance)."""
    key = (cls, name)
    kind = _member_kinds.get(key)
    if kind is None:
        member = inspect.getattr_static(cls, name, None)
        if isinstance(member, (staticmethod, classmethod)):
            kind = "class-level"
        elif isinstance(member, types.FunctionType):
            kind = "method"
        else:
            kind = "instance"
        kind = _member_kinds[key] = kind
    return kind


class ComponentMethod:
    """A bound agent method reached through a handle: calling it is a component call."""

    __slots__ = ("handle", "name")

    def __init__(self, handle: AgentHandle, name: str) -> None:
        self.handle, self.name = handle, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Reached only from uncompiled code running in a worker thread.
        return _blocking(lambda: call(self.handle, self.name, 0, args, kwargs))


def handle(agent_class: type) -> AgentHandle:
    spec = component_spec(agent_class)
    assert spec is not None and spec.kind == "agent"
    return AgentHandle(agent_class, spec)


def call(
    target: Any, method: str | None, flags: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Pending:
    """Start a component call now; its result is a future."""
    if type(target) is AgentHandle:
        spec = target.spec
    else:
        found = component_spec(target)
        if found is None:
            raise NalarcInternalError(f"{target!r} is not a component")
        spec = found
    frame = current_frame()
    pending = Pending(frame, frame.next_seq(), _label(spec, method))
    if flags & AWAIT:
        pending.lazy = True
    frame.outstanding.append(pending)
    if kwargs or type(args) is not tuple or not _atoms(args):
        args, kwargs = _snapshot(args), _snapshot(kwargs)
        inputs = _futures_in((args, kwargs))
    else:
        inputs = []  # atoms only (the common case): nothing to copy, no future inside
    record = CallRecord(spec, target, method, args, kwargs, frame.session, frame.request, pending)
    pending.call = record
    record.stage = flags >> STAGE_SHIFT
    record.inputs = inputs
    predecessor = _chain(frame, spec, pending)
    if not _start_now(frame, record, flags, predecessor):
        frame.nursery.start_soon(_run_call, frame, record, flags, predecessor)
    return pending


_labels: dict[tuple[str, str | None], str] = {}


def _label(spec: ComponentSpec, method: str | None) -> str:
    """``Planner.plan``: a future's name (made once per component method)."""
    label = _labels.get((spec.key, method))
    if label is None:
        label = _labels[(spec.key, method)] = spec.name + (f".{method}" if method else "")
    return label


def _start_now(frame: Frame, record: CallRecord, flags: int, predecessor: Pending | None) -> bool:
    """Hand a call that needs no waiting straight to the backend: no task, no task switch.

    Needs no waiting: its inputs are ready and none failed, it is not ordered
    after earlier calls (``EFFECT``) or a running predecessor, and its request
    and session have a free slot.  Anything else takes :func:`_run_call`,
    which waits first.  The backend settles the future with
    :func:`complete_call`, from its read loop.  This is the hot path of a call.
    """
    start = frame.runtime.start_call
    if start is None or flags & EFFECT or (predecessor is not None and not predecessor.done()):
        return False
    if record.inputs:
        waiting = [p for p in record.inputs if not p.done()]
        if waiting:
            return _wait_for_inputs(frame, record, waiting)
        if any(p.failed() for p in record.inputs):
            return False  # the task raises it, exactly as a call that waited would
        record.args, record.kwargs = _md_now(record.args), _md_now(record.kwargs)
    if frame.top and not _hold_slots(frame, record):
        return False
    return _start_direct(frame, record, start)


def _start_direct(frame: Frame, record: CallRecord, start: Callable[[CallRecord], bool]) -> bool:
    """Give a call that holds its slots to the backend (False: it declined; the slots are freed)."""
    record.direct = True
    try:
        started = start(record)
    except Exception as error:  # noqa: BLE001 - e.g. no instance: delivered to the consumer
        complete_call(record, error, None)
        return True
    if not started:
        record.direct = False
        _release_slots(record)
    return started


def _wait_for_inputs(frame: Frame, record: CallRecord, waiting: list[Pending]) -> bool:
    """Push readiness: the backend places the call now; it starts when its last input settles.

    No task waits for it: each input's settling counts down ``record.waiting``;
    the last one starts :func:`_inputs_ready`.  False: the backend cannot place it.
    """
    place = frame.runtime.place_call
    if place is None or not place(record):
        return False
    record.waiting = len(waiting)
    for p in waiting:
        p.when_done(lambda: _input_settled(frame, record))
    return True


def _input_settled(frame: Frame, record: CallRecord) -> None:
    record.waiting -= 1
    if record.waiting:
        return
    if frame.nursery.cancel_scope.cancel_called:
        _forget(frame, record)  # the frame failed meanwhile: like a cancelled wait, the call never starts
        return
    try:
        frame.nursery.start_soon(_inputs_ready, frame, record)
    except RuntimeError:  # the frame is over
        _forget(frame, record)


async def _inputs_ready(frame: Frame, record: CallRecord) -> None:
    """A placed call's inputs have all settled: fail it, or start it where it is placed.

    It starts one scheduling step later, as a call waiting in a task would,
    so that a migration decided when the value arrived still applies.
    Slots are taken now (as :func:`_run_call` does after its wait), not
    while the inputs were pending.
    """
    try:
        await trio.lowlevel.checkpoint()
        failed = [p for p in record.inputs if p.failed()]
        if failed:
            _forget(frame, record)
            complete_call(record, min(failed, key=lambda p: p.seq)._error, None)
            return
        if frame.top and not _hold_slots(frame, record):
            await _acquire_slots(frame, record)
    except trio.Cancelled:
        _forget(frame, record)
        raise
    _start_placed(frame, record)


async def _acquire_slots(frame: Frame, record: CallRecord) -> None:
    by_request, by_session = frame.runtime.slots(frame.session, frame.request)
    await by_request.acquire_on_behalf_of(record.pending)
    try:
        await by_session.acquire_on_behalf_of(record.pending)
    except BaseException:
        by_request.release_on_behalf_of(record.pending)
        raise
    record.held = (by_request, by_session)


def _forget(frame: Frame, record: CallRecord) -> None:
    if frame.runtime.forget_call is not None:
        frame.runtime.forget_call(record)


def _start_placed(frame: Frame, record: CallRecord) -> None:
    """A placed call's inputs are ready and its slots held: start it where it was placed.

    Should the backend decline after all, the call takes the ordinary path (a task).
    """
    start = frame.runtime.start_call
    assert start is not None
    if not _start_direct(frame, record, start):
        frame.nursery.start_soon(_run_call, frame, record, 0, None)


def _hold_slots(frame: Frame, record: CallRecord) -> bool:
    """Take the request's and the session's slot for a direct call, if both are free now."""
    by_request, by_session = frame.runtime.slots(frame.session, frame.request)
    borrower = record.pending
    try:
        by_request.acquire_on_behalf_of_nowait(borrower)
    except trio.WouldBlock:
        return False
    try:
        by_session.acquire_on_behalf_of_nowait(borrower)
    except trio.WouldBlock:
        by_request.release_on_behalf_of(borrower)
        return False
    record.held = (by_request, by_session)
    return True


def _release_slots(record: CallRecord) -> None:
    for limiter in record.held:
        limiter.release_on_behalf_of(record.pending)
    record.held = ()


def complete_call(record: CallRecord, error: BaseException | None, value: Any) -> None:
    """A direct call's outcome (see :func:`_start_now`): free its slots, settle its future."""
    pending = record.pending
    assert pending is not None and pending.frame is not None
    _release_slots(record)
    chains = pending.frame.runtime.chains
    key = (record.session, record.spec.key)
    if chains.get(key) is pending:
        del chains[key]
    if error is None:
        pending.set_value(value)
    else:
        pending.set_error(error)


def _snapshot(x: Any) -> Any:
    """The arguments as they are now: the caller may mutate them before the call runs.

    Components get copies, as they would across processes; futures inside are shared.
    """
    t = type(x)
    if t in _ATOMS or t is Pending:
        return x
    if t is tuple and _atoms(x):
        return x  # immutable all the way down: nothing to copy (the common case)
    if t is dict and not x:
        return {}
    try:
        return copy.deepcopy(x)
    except Exception:  # noqa: BLE001 - uncopyable (locks, sockets): pass by reference
        return x


async def _resolve_inputs(record: CallRecord) -> None:
    """Replace the futures in a call's arguments by their values, once all are done.

    Unlike :func:`md` this is not user code looking at a value: a failed input
    fails the call with the same exception, but is not *observed* here, so the
    workflow still raises it where sequential Python would.
    """
    if not record.inputs:
        return
    for p in record.inputs:
        if not p.done():
            await p.wait()
    failed = [p for p in record.inputs if p.failed()]
    if failed:
        raise min(failed, key=lambda p: p.seq)._error  # type: ignore[misc]
    record.args, record.kwargs = _md_now(record.args), _md_now(record.kwargs)


def _atoms(xs: tuple[Any, ...]) -> bool:
    """Every element is an atom (no future, nothing mutable)."""
    return all(map(_ATOM_SET.__contains__, map(type, xs)))


def _futures_in(x: Any, depth: int = 0) -> list[Pending]:
    t = type(x)
    if t is Pending:
        return [x]
    if depth > 32 or t in _ATOMS:
        return []
    if t is list or t is tuple:
        return [p for v in x for p in _futures_in(v, depth + 1)]
    if t is dict:
        return [p for v in x.values() for p in _futures_in(v, depth + 1)]
    return []


def _chain(frame: Frame, spec: ComponentSpec, pending: Pending) -> Pending | None:
    """Calls of one session to a stateful or managed-state agent run in order."""
    if spec.kind != "agent" or not (spec.directives.stateful or spec.managed):
        return None
    key = (frame.session, spec.key)
    previous = frame.runtime.chains.get(key)
    frame.runtime.chains[key] = pending
    return previous


async def _run_call(frame: Frame, record: CallRecord, flags: int, predecessor: Pending | None) -> None:
    pending = record.pending
    assert pending is not None
    try:
        await _resolve_inputs(record)
        if flags & EFFECT:
            await frame.wait_before(pending.seq)
            if any(p.seq < pending.seq and p.failed() and not p.observed and not p.lazy for p in frame.outstanding):
                raise Skipped(f"{record.label} skipped: an earlier call failed")
        if predecessor is not None and not predecessor.done():
            await predecessor.wait()
        if frame.top:
            by_request, by_session = frame.runtime.slots(frame.session, frame.request)
            async with by_request, by_session:
                value = await frame.runtime.backend.execute(record)
        else:
            value = await frame.runtime.backend.execute(record)
    except trio.Cancelled:
        if not pending.done():
            # Its frame is over (failed, or an async call nobody awaited): wake whoever
            # waits for it elsewhere (the next call of a stateful agent's chain).
            pending.set_error(Skipped(f"{record.label} cancelled: its frame ended"))
        raise
    except BaseException as error:  # noqa: BLE001 - delivered to the consumer
        pending.set_error(error)
    else:
        pending.set_value(value)
    finally:
        if frame.runtime.chains.get((record.session, record.spec.key)) is pending:
            del frame.runtime.chains[(record.session, record.spec.key)]


# --------------------------------------------------------------------------
# Dynamic dispatch: calls the compiler could not resolve statically
# --------------------------------------------------------------------------

_PURE_BUILTINS: Final = frozenset(
    getattr(builtins, n)
    for n in (
        "abs all any ascii bin bool bytes callable chr complex dict divmod enumerate filter "
        "float format frozenset getattr hasattr hash hex id int isinstance issubclass iter len "
        "list map max min next oct ord pow range repr reversed round set slice sorted str sum "
        "tuple type zip"
    ).split()
)
_PURE_MODULES: Final = frozenset(
    "math cmath json re copy itertools functools operator statistics string textwrap "
    "collections dataclasses heapq bisect decimal fractions hashlib base64 difflib enum "
    "typing unicodedata datetime".split()
)
#: Builtins that never look inside their arguments' elements.
_SHALLOW_BUILTINS: Final = frozenset(
    getattr(builtins, n)
    for n in "len isinstance issubclass type id callable list tuple iter enumerate zip reversed".split()
)
_IMMUTABLE: Final = (str, bytes, int, float, complex, tuple, frozenset, bool, range)
#: Container methods that store a value without looking at it.
_STORES: Final = {(list, "append"), (list, "insert"), (dict, "setdefault")}
_MUTATORS: Final = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault add discard popitem "
    "__setitem__ __delitem__ __iadd__".split()
)


def mark_pure(fn: Any) -> Any:
    """The compiler proved ``fn`` has no effect but its result."""
    try:
        fn.__nalarc_pure__ = True
    except (AttributeError, TypeError):
        pass
    return fn


def _is_pure(fn: Any) -> bool:
    try:
        if fn in _PURE_BUILTINS:
            return True
    except TypeError:
        pass
    if getattr(fn, "__nalarc_pure__", False):
        return True
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        if isinstance(owner, _IMMUTABLE):
            return True
        if isinstance(owner, (list, dict, set)) and getattr(fn, "__name__", "") not in _MUTATORS:
            return True
    module = getattr(fn, "__module__", None) or ""
    return module.partition(".")[0] in _PURE_MODULES


def _is_mutation(fn: Any) -> bool:
    owner = getattr(fn, "__self__", None)
    return isinstance(owner, (list, dict, set)) and getattr(fn, "__name__", "") in _MUTATORS


def _is_compiled_async(fn: Any) -> bool:
    """Compiled code (marked by the code generator; user ``async def`` is not)."""
    return compiled_kind(fn) is not None


def _agent_spec(fn: Any) -> ComponentSpec | None:
    if isinstance(fn, type):
        spec = component_spec(fn)
        return spec if spec is not None and spec.kind == "agent" else None
    return None


async def dyn(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` the right way for whatever it turns out to be at run time."""
    fn = await m(fn)
    if isinstance(fn, ComponentMethod):
        return call(fn.handle, fn.name, _flags_of(fn), args, kwargs)
    spec = component_spec(fn)
    if spec is not None and spec.kind == "tool":
        return call(fn, None, await_flag(fn, None), args, kwargs)
    agent_spec = _agent_spec(fn)
    if agent_spec is not None:
        await md(args)
        return AgentHandle(fn, agent_spec)
    if _hashable(fn):
        intrinsic = _INTRINSICS.get(fn)
        if intrinsic is not None:
            return await intrinsic(*args, **kwargs)
        on_trio = ASYNCIO_FUNCTIONS.get(fn)
        if on_trio is not None:
            return on_trio(*args, **kwargs)  # an awaitable, awaited where the program awaits it
        blocking = ASYNCIO_BLOCKING.get(fn)
        if blocking is not None:
            return await blocking(*args, **kwargs)  # asyncio.run(main)
    step = agen_step(fn)
    if step is not None:
        return step(*await md(args), **await md(kwargs))  # agen.asend(x): native, like anext(agen)
    unserved = _unserved_agent_method(fn)
    if unserved is not None:
        agent_handle = AgentHandle(type(fn.__self__), unserved)
        return call(agent_handle, fn.__name__, _flags_of(ComponentMethod(agent_handle, fn.__name__)), args, kwargs)
    kind = compiled_kind(fn)
    if kind == CALL:
        return await fn(*args, **kwargs)
    if kind == COROUTINE:
        return fn(*args, **kwargs)  # a coroutine, as in plain Python
    return await _opaque(fn, args, kwargs, effect=False)


def _unserved_agent_method(fn: Any) -> ComponentSpec | None:
    """The agent, if ``fn`` is a method of an agent instance uncompiled code made
    (a module global ``bot = Bot()``): calling it is a component call.

    Not for the instances the runtime serves (an agent method calling its own
    ``self.m()`` or ``super().m()`` runs its own code), nor for a base class's
    function reached through ``super()``.
    """
    if not inspect.ismethod(fn):
        return None
    owner = fn.__self__
    spec = _agent_spec(type(owner))
    if spec is None or is_served(owner):
        return None
    if getattr(type(owner), fn.__name__, None) is not getattr(fn, "__func__", None):
        return None  # super().m: not the method the instance's class has under that name
    return spec


class _Stopped(Exception):
    """``StopIteration`` from uncompiled code, on its way through runtime coroutines."""

    def __init__(self, error: StopIteration) -> None:
        super().__init__(*error.args)
        self.error = error


def _plain_call(fn: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except StopIteration as error:
        raise _Stopped(error) from None


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


async def dyn_next(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``dyn`` for calls that may raise ``StopIteration`` (``next``, ``.send``): unwrap with :func:`v`."""
    try:
        return await dyn(fn, args, kwargs)
    except _Stopped as stopped:
        return Raised(stopped.error)


def v(result: Any) -> Any:
    """Raise what :func:`dyn_next` carried out; else the result."""
    if type(result) is Raised:
        raise result.error
    return result


def stop_iteration_of(error: BaseException) -> BaseException:
    """The ``StopIteration`` PEP 479 wrapped when it left compiled code, else ``error``."""
    if type(error) is _Stopped:
        return error.error
    cause = error.__cause__
    if type(error) is RuntimeError and isinstance(cause, StopIteration) and "raised StopIteration" in str(error):
        return cause
    return error


async def dyn_effect(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call whose receiver is shared beyond this request (a module global)."""
    await settle()
    fn = await m(fn)
    if isinstance(fn, ComponentMethod) or component_spec(fn) is not None or _is_compiled_async(fn):
        return await dyn(fn, args, kwargs)
    return await _opaque(fn, args, kwargs, effect=True)


def _flags_of(method: ComponentMethod) -> int:
    spec = method.handle.spec
    writes = getattr(method.handle.agent_class, "__nalarc_writes__", None)
    flags = await_flag(method.handle.agent_class, method.name)
    if spec.directives.stateful or (spec.managed and (writes is None or method.name in writes)):
        return flags | EFFECT
    return flags


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


async def _opaque(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], effect: bool) -> Any:
    """Hand values to code nalarc did not compile: deep-materialize them first."""
    frame = current_frame()
    store_only = (type(getattr(fn, "__self__", None)), getattr(fn, "__name__", "")) in _STORES
    if store_only and frame.try_depth == 0 and not effect:
        if getattr(fn, "__name__", "") in ("insert", "setdefault") and args:
            args = (await md(args[0]), *args[1:])  # an index / a key is looked at; the value is not
        return _plain_call(fn, args, kwargs)
    if _hashable(fn) and fn in _SHALLOW_BUILTINS and not kwargs and not any(map(is_region, args)):
        values = [await m(a) for a in args]
        if fn is type and len(values) == 1 and type(values[0]) is AgentHandle:
            return values[0].agent_class  # what type() of the agent object would say
        return _plain_call(fn, values, {})
    owner = getattr(fn, "__self__", None)
    if type(owner) in (list, dict, tuple):
        # A container's own methods read its elements (values(), index(), count()...).
        await md(owner)
    args = await md(args)
    kwargs = await md(kwargs)
    if not effect and is_foreign_coroutine_function(fn):
        return fn(*args, **kwargs)  # only makes the coroutine: it runs where it is awaited (aw)
    if effect or not _is_pure(fn) and (frame.try_depth > 0 or not _is_mutation(fn)):
        await settle()
    if is_asyncio_bound(fn):
        return await call_asyncio_bound(fn, args, kwargs)  # asyncio objects are not thread-safe
    args, kwargs, needs_thread = _adapt_callbacks(args, kwargs)
    # Uncompiled code reading a handle's attribute blocks for it: not on the event loop.
    needs_thread = needs_thread or _has_handle(args) or _has_handle(kwargs.values())
    if needs_thread or is_region(fn) or _wants_thread(fn):
        result = await trio.to_thread.run_sync(
            lambda: _plain_call(fn, args, kwargs), limiter=frame.runtime.thread_limiter
        )
    else:
        result = _plain_call(fn, args, kwargs)
    if needs_thread and isinstance(result, Iterator):
        return _RegionIter(result)
    if needs_thread and callable(result) and not isinstance(result, type):
        return _RegionCallable(result)  # e.g. functools.partial(tool, ...)
    return result


def _has_handle(values: Iterable[Any]) -> bool:
    """A handle among ``values``, or directly inside one of them (a list, a dict, a view)."""
    for x in values:
        if type(x) is AgentHandle:
            return True
        t = type(x)
        if t is dict:
            x = x.values()
        elif t not in _SHALLOW_CONTAINERS:
            continue
        if any(type(y) is AgentHandle for y in x):
            return True
    return False


_SHALLOW_CONTAINERS: Final = frozenset({list, tuple, set, frozenset, type({}.values()), type({}.keys())})


class _RegionCallable:
    """A callable built around a blocking callback: call it in a thread."""

    __slots__ = ("fn",)
    __nalarc_region__ = True

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def _wants_thread(fn: Any) -> bool:
    """Impure app or library code may block on I/O: keep it off the event loop."""
    if _is_pure(fn) or isinstance(fn, type):
        return False
    module = getattr(fn, "__module__", None)
    return module not in (None, "builtins")


def _adapt_callbacks(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """Swap callables that reach components for blocking versions (threads only)."""
    needs_thread = False

    def adapt(x: Any) -> Any:
        nonlocal needs_thread
        if is_region(x):
            needs_thread = True
            return x
        blocking = _blocking_version(x)
        if blocking is not None:
            needs_thread = True
            return blocking
        return x

    new_args = tuple(adapt(a) for a in args)
    new_kwargs = {k: adapt(v) for k, v in kwargs.items()}
    return new_args, new_kwargs, needs_thread


def _blocking_version(x: Any) -> Callable[..., Any] | None:
    if isinstance(x, ComponentMethod) or compiled_kind(x) == CALL or (
        callable(x) and (_spec := component_spec(x)) is not None and _spec.kind == "tool"
    ):
        def blocking(*a: Any, **k: Any) -> Any:
            return bmd(bdyn(x, a, k))

        # Name, docstring, __wrapped__ (so inspect.signature sees the original), not __dict__
        # (a copied component spec would make the wrapper look like the tool itself).
        return functools.update_wrapper(blocking, x, updated=())
    return None  # compiled from async def: calling it only makes a coroutine, anywhere


# --------------------------------------------------------------------------
# Stores that may keep futures (containers this request built) or not
# --------------------------------------------------------------------------


async def setitem_effect(obj: Any, key: Any, val: Any) -> None:
    """``obj[key] = val`` on a container the request does not own (a global)."""
    obj, key, val = await m(obj), await md(key), await md(val)
    await settle()
    obj[key] = val


async def settled(x: Any) -> Any:
    """``return x`` inside a try body: failures must surface inside the body."""
    await settle()
    return x


async def setitem(obj: Any, key: Any, val: Any) -> None:
    """``obj[key] = val``: lists and dicts may hold futures, other objects may not."""
    frame = current_frame()
    obj, key = await m(obj), await md(key)
    if type(obj) in (list, dict) and frame.try_depth == 0:
        obj[key] = val
        return
    val = await md(val)
    if frame.try_depth > 0:
        await settle()
    obj[key] = val


async def setattr_(obj: Any, name: str, val: Any) -> None:
    """``obj.name = val``: an effect on an object the request may not own.

    On an agent handle it is a write on the instance serving the session
    (:data:`~nalarc._api.ATTRIBUTE_WRITE`), done before the program goes on, as
    the assignment is in Python (a later read of the attribute sees it).
    """
    obj, val = await m(obj), await md(val)
    await settle()
    if type(obj) is AgentHandle:
        await m(call(obj, ATTRIBUTE_WRITE, EFFECT, (name, val), {}))
        return
    setattr(obj, name, val)


# --------------------------------------------------------------------------
# Iteration and intrinsics
# --------------------------------------------------------------------------


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
    if isinstance(iterable, _AsCompleted):
        return iterable
    if isinstance(iterable, _RegionIter):
        return _ThreadAsyncIter(iterable)
    return _SyncAsyncIter(iter(iterable))


class _AsCompleted:
    def __init__(self, items: list[Any]) -> None:
        self.send, self.receive = trio.open_memory_channel[Any](len(items) or 1)
        self.remaining = len(items)
        frame = current_frame()
        for item in items:
            frame.nursery.start_soon(self._deliver, item)

    async def _deliver(self, item: Any) -> None:
        if type(item) is Pending and not item.done():
            await item.wait()
        self.send.send_nowait(item)

    def __aiter__(self) -> _AsCompleted:
        return self

    async def __anext__(self) -> Any:
        if self.remaining == 0:
            raise StopAsyncIteration
        self.remaining -= 1
        return await self.receive.receive()


async def as_completed(xs: Iterable[Any]) -> _AsCompleted:
    return _AsCompleted(list(await m(xs)))


async def available(x: Any) -> bool:
    return type(x) is not Pending or x.done()


async def value(x: Any, timeout: float | None = None) -> Any:
    if timeout is None:
        return await md(x)
    with trio.fail_after(timeout):
        if type(x) is Pending:
            await x.wait()
    return await md(x)


def _intrinsics() -> dict[Any, Callable[..., Awaitable[Any]]]:
    from .. import _intrinsics as plain
    from .. import _state

    return {
        plain.available: available,
        plain.value: value,
        plain.as_completed: as_completed,
        _state.current_session: session_id,
    }



# --------------------------------------------------------------------------
# Regions: synchronous compiled code that may block (only in worker threads)
# --------------------------------------------------------------------------


def region(fn: Any) -> Any:
    """Mark a compiled synchronous callable that may block on futures."""
    try:
        fn.__nalarc_region__ = True
    except AttributeError:
        pass
    return fn


def is_region(x: Any) -> bool:
    return isinstance(x, _RegionIter) or getattr(x, "__nalarc_region__", False) is True


class _RegionIter:
    """A generator made of compiled synchronous code: step it in a thread."""

    __slots__ = ("it",)

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it

    def __iter__(self) -> _RegionIter:
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

    def wrapper(*args: Any, **kwargs: Any) -> _RegionIter:
        return _RegionIter(fn(*args, **kwargs))

    wrapper.__name__ = getattr(fn, "__name__", "gen")
    wrapper.__qualname__ = getattr(fn, "__qualname__", "gen")
    wrapper.__nalarc_region__ = True  # type: ignore[attr-defined]
    return wrapper


def _on_trio_thread() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _blocking(fn: Callable[[], Any]) -> Any:
    if _on_trio_thread():
        raise NalarcError(
            "a callback that calls components was invoked by code nalarc could not see "
            "on the event loop thread; pass it directly as an argument of the call"
        )
    return trio.from_thread.run_sync(fn)


def _blocking_async(afn: Callable[[], Awaitable[Any]]) -> Any:
    if _on_trio_thread():
        raise NalarcError(
            "a callback that calls components was invoked by code nalarc could not see "
            "on the event loop thread; pass it directly as an argument of the call"
        )
    return trio.from_thread.run(afn)


def bm(x: Any) -> Any:
    """Blocking ``m``: for regions."""
    if type(x) is not Pending:
        return x
    if x.done() and x._error is None:
        return x._value
    return _blocking_async(lambda: m(x))


def _all_done(x: Any, depth: int = 0) -> bool:
    t = type(x)
    if t is Pending:
        return x.done() and x._error is None and _all_done(x._value, depth + 1)
    if t is list or t is tuple:
        return all(_all_done(v, depth + 1) for v in x)
    if t is dict:
        return all(_all_done(v, depth + 1) for v in x.values())
    return t is not _AsCompleted


def _md_now(x: Any) -> Any:
    """``md`` for values that are all ready: needs no waiting, so no thread."""
    t = type(x)
    if t is Pending:
        return _md_now(x._value)
    if t is list:
        x[:] = [_md_now(v) for v in x]
        return x
    if t is dict:
        for k, v in x.items():
            x[k] = _md_now(v)
        return x
    if t is tuple:
        return tuple(_md_now(v) for v in x)
    return x


def with_values(x: Any, value: Callable[[Pending], Any]) -> Any:
    """``x`` with every future ``p`` in it replaced by ``value(p)`` (containers copied, not changed)."""
    return substitute(x, Pending, value)


def bmd(x: Any) -> Any:
    """Blocking ``md``: for regions (no wait at all when everything is ready)."""
    if not _has_pending(x):
        return x
    if _all_done(x):
        return _md_now(x)
    return _blocking_async(lambda: md(x))


def bmd_lazy(x: Any) -> Any:
    """Blocking :func:`md_lazy`."""
    if type(x) is Pending and x.lazy:
        return x
    if not _has_pending(x):
        return x
    return _blocking_async(lambda: md_lazy(x))


def bcall(
    target: Any, method: str | None, flags: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A component call from synchronous compiled code.

    In a worker thread it starts a future like :func:`call`.  On the event loop
    thread (a property or dunder Python called implicitly) nothing can wait,
    so the call runs inline: the compiler warned about this fallback.
    """
    if flags & AWAIT:
        return _start_anywhere(lambda: call(target, method, flags, args, kwargs))
    if _on_trio_thread():
        frame = current_frame()
        spec = target.spec if isinstance(target, AgentHandle) else component_spec(target)
        assert spec is not None
        return frame.runtime.backend.run_inline(spec, target, method, bmd(args), bmd(kwargs), frame.session)
    return _blocking(lambda: call(target, method, flags, args, kwargs))


def bdyn(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Blocking ``dyn``: for regions."""
    fn = bm(fn)
    if compiled_kind(fn) == COROUTINE:
        return fn(*args, **kwargs)  # only makes a coroutine: nothing to wait for, on any thread
    lazy = _lazy_component_call(fn, args, kwargs)
    if lazy is not None:
        return _start_anywhere(lazy)
    if isinstance(fn, ComponentMethod) or (
        (spec := component_spec(fn)) is not None and spec.kind == "tool"
    ) or _is_compiled_async(fn) or _agent_spec(fn) is not None or (
        _hashable(fn) and fn in _INTRINSICS
    ):
        return _blocking_async(lambda: dyn(fn, args, kwargs))
    return fn(*bmd(args), **bmd(kwargs))


def _lazy_component_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Pending] | None:
    """How to start ``fn(*args, **kwargs)`` if it calls a component written ``async def``."""
    if isinstance(fn, ComponentMethod):
        flags = _flags_of(fn)
        if flags & AWAIT:
            return lambda: call(fn.handle, fn.name, flags, args, kwargs)
    elif callable(fn) and (spec := component_spec(fn)) is not None and spec.kind == "tool":
        flags = await_flag(fn, None)
        if flags & AWAIT:
            return lambda: call(fn, None, flags, args, kwargs)
    return None


def _start_anywhere(start: Callable[[], Any]) -> Any:
    """Start a call of an async component from blocking code (a region, or code Python runs
    implicitly on the event loop thread, as ``*`` unpacking a generator).

    In plain Python the call only makes a coroutine: nothing waits, so it needs no
    worker thread, and it is never run inline.  The future it gives is lazy: it
    fails only where it is awaited.
    """
    if _on_trio_thread():
        return start()
    return trio.from_thread.run_sync(start)


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


def region_iter(gen: Iterator[Any]) -> _RegionIter:
    """A generator expression whose body may block: step it in a thread."""
    return _RegionIter(gen)


def push_try() -> None:
    """Entering a compiled ``try`` / ``with`` body (after the entry settle)."""
    current_frame().try_depth += 1


async def local(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call synchronous app code (``self.helper(x)``): never a component call."""
    kind = compiled_kind(fn)
    if kind == CALL:
        return await fn(*args, **kwargs)
    if kind == COROUTINE:
        return fn(*args, **kwargs)
    return await _opaque(fn, args, kwargs, effect=False)


async def session_id() -> str:
    """``nalarc.current_session()`` in compiled code."""
    return current_frame().session


_INTRINSICS: Final = _intrinsics()


# The part of the runtime for code written ``async def`` (it builds on the names above).
from ._rt_async import (  # noqa: E402
    ASYNCIO_BLOCKING,
    ASYNCIO_FUNCTIONS,
    CALL,
    COROUTINE,
    acm_enter as acm_enter,
    acm_exit as acm_exit,
    agen_step,
    aiter_async as aiter_async,
    aw as aw,
    await_flag,
    call_asyncio_bound,
    compiled as compiled,
    compiled_async as compiled_async,
    compiled_kind as compiled_kind,
    is_asyncio_bound,
    is_foreign_coroutine_function,
    native_agen as native_agen,
    run_in_frame as run_in_frame,
)
from ._import_time import run_sync as run_sync  # noqa: E402
