"""Futures and frames: the state every other part of the runtime works on.

Frame
    One execution of compiled code with its own futures: a workflow request
    in the driver, or one component call.  Every future started in the frame
    gets a sequence number in program order; *settling* waits for all of them
    and raises the earliest failure, which is exactly the exception
    sequential Python would have raised first.
Pending
    A future: a component call's result that may not be ready yet.  Its value
    is immutable once set.

State (per frame): ``outstanding`` (futures not yet known to have succeeded,
in start order), ``try_depth`` (how many compiled ``try`` bodies enclose the
running code), ``last_raised`` (the failure most recently handed to user code).

:class:`Backend` and :class:`DirectBackend` are the protocol the driver and the
worker implement: where component calls execute.
"""

from __future__ import annotations

import contextvars
import itertools
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._api import ComponentSpec
from .._errors import NalarcError

if TYPE_CHECKING:
    from ._replay import RequestJournal


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
    """A backend that takes calls synchronously, without a task per call (see :func:`._launch._start_now`).

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
        "inputs", "direct", "held", "waiting", "placed", "pushes", "attempt", "span",
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
        #: Started by :func:`._launch._start_now`: the backend settles it with :func:`complete_call`.
        self.direct = False
        #: The request and session slots it holds while it runs (direct calls only).
        self.held: tuple[trio.CapacityLimiter, ...] = ()
        #: Inputs not yet done, for a call placed before they were (see :func:`._launch._wait_for_inputs`).
        self.waiting = 0
        #: The backend's own records (push readiness): where a placed call will
        #: run, and where this call's value goes when it is done.  Any: each
        #: backend defines them; the runtime only carries them.
        self.placed: Any = None
        self.pushes: Any = None
        #: Where the backend sent it last (its own handle for that attempt).
        self.attempt: Any = None
        #: Its OpenTelemetry span (``nalarc._telemetry``), None when telemetry is off.
        self.span: Any = None

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
        "lazy", "key", "__weakref__",
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
        #: Its call's key in the request's call journal (:mod:`._replay`); None: not journaled.
        self.key: str | None = None

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
        #: The request's call journal (:mod:`._replay`): only its own frames' calls are journaled.
        self.journal: RequestJournal | None = runtime.journals.get(request) if top and runtime.journals else None

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
        #: Requests run with a call journal (request id -> its view of the journal).
        self.journals: dict[str, RequestJournal] = {}

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

frame_var: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("nalarc_frame", default=None)


def current_frame() -> Frame:
    frame = frame_var.get()
    if frame is None:
        raise NalarcError(
            "compiled nalarc code ran outside the runtime; run it with `nalarc run` "
            "or nalarc.executor.run_request()"
        )
    return frame


def enter_frame(frame: Frame) -> contextvars.Token[Frame | None]:
    return frame_var.set(frame)


def leave_frame(token: contextvars.Token[Frame | None]) -> None:
    frame_var.reset(token)


class AsCompleted:
    """Futures in completion order (``nalarc.as_completed`` in compiled code)."""

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

    def __aiter__(self) -> AsCompleted:
        return self

    async def __anext__(self) -> Any:
        if self.remaining == 0:
            raise StopAsyncIteration
        self.remaining -= 1
        return await self.receive.receive()
