"""Starting component calls: agent handles, ``call``, push readiness, completion.

How a call starts (:func:`call`): one that needs no waiting goes to a
:class:`~._futures.DirectBackend` from the calling task, with no task of its
own, and the backend settles its future (:func:`complete_call`); one whose
inputs are pending is *placed* by such a backend and started when its last
input settles (push readiness); anything else (ordered after earlier calls, a
running predecessor, a backend without these entries) waits in a task,
:func:`_run_call`.  All three fail a call whose input failed with that input's
exception, without running it.
"""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable
from typing import Any

import trio

from .. import _telemetry
from .._api import ATTRIBUTE_READ, ATTRIBUTE_WRITE, ComponentSpec, component_spec
from .._errors import NalarcError, NalarcInternalError
from ..ir import AWAIT, EFFECT, STAGE_SHIFT
from ._futures import CallRecord, Frame, Pending, Skipped, current_frame
from ._materialize import ATOM_SET, ATOMS, m, md_now
from ._threads import from_thread, from_thread_async, on_trio_thread


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
        if on_trio_thread():
            return call(self, ATTRIBUTE_READ, 0, (name,), {})
        return from_thread_async(lambda: m(call(self, ATTRIBUTE_READ, 0, (name,), {})))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in AgentHandle.__slots__:
            object.__setattr__(self, name, value)
        elif on_trio_thread():
            raise NalarcError(
                f"{name!r} of agent {self.spec.name!r} was assigned by code nalarc could not see, on the "
                "event loop thread: assign it in the workflow, or in a method of the agent"
            )
        else:
            from_thread_async(lambda: m(call(self, ATTRIBUTE_WRITE, EFFECT, (name, value), {})))

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
        return from_thread(lambda: call(self.handle, self.name, 0, args, kwargs))


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
    journal = frame.journal
    parent = _telemetry.current_span.get()
    if journal is not None and journal.launch(record, pending):
        if parent is not None:
            _telemetry.replayed_call_span(record, pending, parent)
        return pending  # replayed from the journal (or its outcome is unknown): it does not run
    if parent is not None:
        record.span = _telemetry.start_call_span(record, pending, parent)
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
        record.args, record.kwargs = md_now(record.args), md_now(record.kwargs)
    if frame.top and not _hold_slots(frame, record):
        return False
    return _start_direct(frame, record, start)


def _start_direct(frame: Frame, record: CallRecord, start: Callable[[CallRecord], bool]) -> bool:
    """Give a call that holds its slots to the backend (False: it declined; the slots are freed)."""
    record.direct = True
    try:
        if record.pending is not None and record.pending.key is not None:
            _journal_dispatch(record, record.pending.key)
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
        if pending.key is not None:
            _journal_success(pending, value)
        pending.set_value(value)
    else:
        pending.set_error(error)


def _journal_dispatch(record: CallRecord, key: str) -> None:
    frame = record.pending.frame if record.pending is not None else None
    assert frame is not None and frame.journal is not None
    frame.journal.dispatching(record, key)


def _journal_success(pending: Pending, value: Any) -> None:
    """Journal a keyed call's result before its future settles (:mod:`._replay`)."""
    frame = pending.frame
    assert frame is not None and frame.journal is not None
    frame.journal.succeeded(pending, value)


def _snapshot(x: Any) -> Any:
    """The arguments as they are now: the caller may mutate them before the call runs.

    Components get copies, as they would across processes; futures inside are shared.
    """
    t = type(x)
    if t in ATOMS or t is Pending:
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
    record.args, record.kwargs = md_now(record.args), md_now(record.kwargs)


def _atoms(xs: tuple[Any, ...]) -> bool:
    """Every element is an atom (no future, nothing mutable)."""
    return all(map(ATOM_SET.__contains__, map(type, xs)))


def _futures_in(x: Any, depth: int = 0) -> list[Pending]:
    t = type(x)
    if t is Pending:
        return [x]
    if depth > 32 or t in ATOMS:
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
                if pending.key is not None:  # marked once it holds its slots: it is being dispatched
                    _journal_dispatch(record, pending.key)
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
        if pending.key is not None:
            _journal_success(pending, value)
        pending.set_value(value)
    finally:
        if frame.runtime.chains.get((record.session, record.spec.key)) is pending:
            del frame.runtime.chains[(record.session, record.spec.key)]
