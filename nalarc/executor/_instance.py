"""The component-level controller: one per instance, event by event.

It owns the instance's priority queue and concurrency limit, merges queued
calls of a ``batchable`` agent into one batch, preempts for ``preemptable``
agents, and publishes the metrics the global controller reads.  It talks to
workers only through its :class:`InstanceHost` (the backend), so placement and
transport can change without touching it.

State (kept incrementally, so no event and no collection walks the queue):
    ``_queue``     heap of ``(-priority, order, entry)``; an item is live only
                   while ``entry.heap_item is item`` (re-prioritized and
                   migrated calls leave stale items behind, dropped on pop
                   and by compaction)
    ``_sessions``  session -> its live calls here (queued and running)
    ``_deepest``   session -> the deepest stage among them, and
    ``_at_deepest`` how many of them are at it: a call leaving costs O(1)
                   Python however wide the session's fan-out (the deepest
                   stage is recomputed only when its last call leaves)
    ``_waiting``   session -> how many of them are queued
    ``_changed``   sessions whose deepest stage changed since the last
                   :meth:`InstanceController.drain_changes` (the deltas the
                   global controller collects); None until a global
                   controller first collects, so an instance nobody collects
                   from keeps no history
    ``_pending``   session -> priority installed by the global controller and
                   not yet applied (applied before the next pop, so the
                   global loop never waits on a heap)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import trio

from .. import _telemetry
from .._api import ComponentSpec
from ..policies import FutureMetrics, InstanceMetrics
from ..runtime import lowlevel as _rt
from ._statestore import StateStore
from ._trace import Tracer

if TYPE_CHECKING:
    from ._controller import NodeStore

_future_ids = itertools.count(1)

#: A queued call's item in its instance's heap.
HeapItem = tuple[int, int, "QueuedCall"]


@dataclass(eq=False, slots=True)
class QueuedCall:
    """A call at an instance: its metadata moves with it when it migrates.

    Slotted and compared by identity; its events are made only when someone
    waits on them (a call the runtime settles directly never does): the
    driver holds one of these per pending call.
    """

    call: _rt.CallRecord
    priority: int
    ok: bool = False
    payload: Any = None
    text: str = ""
    attempts: int = 0
    future_id: str = field(default_factory=lambda: f"F{next(_future_ids)}")
    created: float = field(default_factory=trio.current_time)
    #: The instance was asked to preempt this call: a failure re-queues it.
    preempted: bool = False
    #: It timed out (``timeout`` directive): its late result and managed-state writes are discarded.
    abandoned: bool = False
    in_batch: bool = False
    started: float = 0.0
    #: Its live item in the instance's heap while queued, else None.
    heap_item: HeapItem | None = field(default=None, repr=False)
    _done: trio.Event | None = field(default=None, repr=False)
    _returned: trio.Event | None = field(default=None, repr=False)

    @property
    def done(self) -> trio.Event:
        """Set when the call's outcome (``ok``, ``payload``, ``text``) is known."""
        if self._done is None:
            self._done = trio.Event()
        return self._done

    @property
    def returned(self) -> trio.Event:
        """Set when the instance gives the call back (batched calls only)."""
        if self._returned is None:
            self._returned = trio.Event()
        return self._returned


class WorkerLike(Protocol):
    """Where an instance runs, as its controller sees it."""

    id: str
    alive: bool

    @property
    def pid(self) -> int: ...


W = TypeVar("W", bound=WorkerLike)

#: ``observer(component, kind, queued seconds, seconds from arrival to finish)``, once per finished call.
CallObserver = Callable[[str, str, float, float], None]


class InstanceHost(Protocol):
    """What a component-level controller needs from its backend (placement and transport)."""

    store: StateStore
    tracer: Tracer | None
    call_observer: CallObserver | None
    max_batch: int
    batching: bool
    #: Where this instance reads decisions and publishes telemetry.
    node_store: NodeStore

    @property
    def nursery(self) -> trio.Nursery: ...

    def send_run(self, controller: InstanceController[Any], entry: QueuedCall, state: Any) -> None: ...

    async def send_batch(self, controller: InstanceController[Any], batch: list[QueuedCall]) -> None: ...

    async def send_preempt(self, controller: InstanceController[Any], hook: str) -> None: ...


class InstanceController(Generic[W]):
    """The component-level controller of one instance: queue, limit, metrics (see the module docstring)."""

    def __init__(self, backend: InstanceHost, instance_id: str, spec: ComponentSpec, worker: W, limit: int) -> None:
        self.backend, self.id, self.spec, self.worker, self.limit = backend, instance_id, spec, worker, limit
        self._queue: list[HeapItem] = []
        self._queued = 0
        self._order = itertools.count()
        self._sessions: dict[str, list[QueuedCall]] = {}
        self._deepest: dict[str, int] = {}
        self._at_deepest: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._changed: set[str] | None = None
        self._pending: dict[str, int] = {}
        self.running = 0
        self.running_entries: dict[str, QueuedCall] = {}
        self.completed = 0
        self.busy_seconds = 0.0
        self.latency_ms = 0.0
        self.batches = 0
        self.retired = False
        self._busy_mark = (trio.current_time(), 0.0)
        backend.node_store.attach(self)

    @property
    def queue_length(self) -> int:
        return self._queued

    @property
    def load(self) -> int:
        return self._queued + self.running

    def waiting_sessions(self) -> AbstractSet[str]:
        """Sessions with a call queued here (a live view)."""
        return self._waiting.keys()

    # -- arrivals and departures --------------------------------------------

    def submit(self, entry: QueuedCall) -> None:
        """A call arrives: it takes the installed priority of its session here and joins the queue."""
        call = entry.call
        entry.priority = self.backend.node_store.decisions.priority(call.session, self.spec.name)
        self._enqueue(entry, next(self._order))
        self._remember(entry)
        self._maybe_preempt(entry)
        self._pump()

    def _enqueue(self, entry: QueuedCall, order: int) -> None:
        entry.heap_item = item = (-entry.priority, order, entry)
        heapq.heappush(self._queue, item)
        self._queued += 1
        session = entry.call.session
        self._waiting[session] = self._waiting.get(session, 0) + 1

    def _unqueue(self, entry: QueuedCall) -> None:
        """``entry`` leaves the queue (its heap item, if still there, is stale from now on)."""
        entry.heap_item = None
        self._queued -= 1
        session = entry.call.session
        left = self._waiting[session] - 1
        if left:
            self._waiting[session] = left
        else:
            del self._waiting[session]

    def _remember(self, entry: QueuedCall) -> None:
        """``entry`` is live here (queued or running): index it by session."""
        session, stage = entry.call.session, entry.call.stage
        entries, changed = self._sessions.get(session), self._changed
        if entries is None:
            self._sessions[session] = [entry]
        else:
            entries.append(entry)
            deepest = self._deepest[session]
            if stage == deepest:
                self._at_deepest[session] += 1
            if stage <= deepest:
                return
        self._deepest[session], self._at_deepest[session] = stage, 1
        if changed is not None:
            changed.add(session)

    def _forget(self, entry: QueuedCall) -> None:
        """``entry`` is no longer here (finished, failed, migrated)."""
        session = entry.call.session
        entries = self._sessions.get(session)
        if entries is None:
            return
        try:
            entries.remove(entry)  # compared by identity, in C: cheap even for a wide fan-out
        except ValueError:
            return
        if not entries:
            del self._sessions[session], self._deepest[session], self._at_deepest[session]
        elif entry.call.stage == self._deepest[session]:
            left = self._at_deepest[session] - 1
            if left:
                self._at_deepest[session] = left
                return
            deepest = max(e.call.stage for e in entries)  # the last call at the deepest stage left
            self._deepest[session] = deepest
            self._at_deepest[session] = sum(e.call.stage == deepest for e in entries)
        else:
            return
        if self._changed is not None:
            self._changed.add(session)

    def _maybe_preempt(self, arriving: QueuedCall) -> None:
        """A ``preemptable`` instance that is full makes room for a more urgent call."""
        hook = self.spec.directives.preemptable
        if hook is None or self.running < self.limit or not self.running_entries:
            return
        victim = min(self.running_entries.values(), key=lambda e: (e.priority, -e.created))
        if victim.priority >= arriving.priority or victim.preempted:
            return
        victim.preempted = True
        self.backend.nursery.start_soon(self.backend.send_preempt, self, hook)

    # -- migration ------------------------------------------------------------

    def take_queued(self) -> list[QueuedCall]:
        """Remove and return every queued (not running) call, for migration."""
        return self.take(lambda entry: True)

    def take(self, wanted: Callable[[QueuedCall], bool]) -> list[QueuedCall]:
        """Remove and return the queued calls ``wanted`` selects (in queue order); they leave this instance."""
        taken = self._take(wanted)
        for entry in taken:
            self._forget(entry)
        return taken

    def take_session(self, session: str) -> list[QueuedCall]:
        """Remove and return ``session``'s queued calls (in queue order): O(that session's calls here)."""
        self.apply_priorities()
        items = sorted(e.heap_item for e in self._sessions.get(session, ()) if e.heap_item is not None)
        return self._leave([entry for _, _, entry in items])

    def take_future(self, future_id: str) -> list[QueuedCall]:
        """Remove and return the queued call ``future_id`` (empty if it is not queued here)."""
        self.apply_priorities()
        found = [e for e in self._live() if e.future_id == future_id]
        return self._leave(found[:1])

    def _leave(self, entries: list[QueuedCall]) -> list[QueuedCall]:
        for entry in entries:
            self._unqueue(entry)
            self._forget(entry)
        self._compact_if_stale()
        return entries

    def _take(self, wanted: Callable[[QueuedCall], bool]) -> list[QueuedCall]:
        """Unqueue the calls ``wanted`` selects, asking once per call in queue order."""
        self.apply_priorities()
        taken: list[HeapItem] = []
        kept: list[HeapItem] = []
        for item in sorted(self._live_items()):
            (taken if wanted(item[2]) else kept).append(item)
        if taken:
            self._queue = kept
            heapq.heapify(self._queue)
            for _, _, entry in taken:
                self._unqueue(entry)
        return [entry for _, _, entry in taken]

    # -- priorities ------------------------------------------------------------

    def reprioritize(self, session: str, priority: int) -> None:
        """The global controller installed ``priority`` for ``session`` here: applied before the next pop."""
        if session in self._sessions:
            self._pending[session] = priority

    def apply_priorities(self) -> None:
        """Enforce the priorities installed since the last pop (re-keys those sessions' queued calls)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        fresh: list[HeapItem] = []
        for session, priority in pending.items():
            for entry in self._sessions.get(session, ()):
                item = entry.heap_item
                if item is not None and entry.priority != priority:
                    entry.priority = priority
                    entry.heap_item = new = (-priority, item[1], entry)
                    fresh.append(new)
        if fresh and len(fresh) * 8 > self._queued:  # many changed: one heapify beats many pushes
            self._queue = [*self._live_items(), *fresh]
            heapq.heapify(self._queue)
        else:
            for item in fresh:
                heapq.heappush(self._queue, item)
        self._compact_if_stale()

    def _live_items(self) -> Iterator[HeapItem]:
        return (item for item in self._queue if item[2].heap_item is item)

    def _live(self) -> Iterator[QueuedCall]:
        return (item[2] for item in self._queue if item[2].heap_item is item)

    def _compact_if_stale(self) -> None:
        if len(self._queue) > 2 * self._queued + 64:
            self._queue = list(self._live_items())
            heapq.heapify(self._queue)

    # -- what the global controller reads --------------------------------------

    def metrics(self, pending: int = 0) -> InstanceMetrics:
        """What this controller publishes to the node store (O(1): every field is kept up to date).

        ``pending``: calls routed here that wait for their inputs (the router counts them).
        """
        now = trio.current_time()
        since, busy_before = self._busy_mark
        utilization = (self.busy_seconds - busy_before) / max(now - since, 1e-9)
        self._busy_mark = (now, self.busy_seconds)
        return InstanceMetrics(
            id=self.id, component=self.spec.name, kind=self.spec.kind, worker=self.worker.id,
            alive=self.worker.alive and not self.retired, stateful=self.spec.directives.stateful,
            queue_length=self._queued, running=self.running, capacity=self.limit,
            completed=self.completed, waiting_sessions=self._waiting.keys(),
            latency_ms=self.latency_ms, utilization=utilization, pending=pending,
        )

    def drain_changes(self) -> list[tuple[str, int | None]]:
        """Sessions whose deepest live stage here changed since the last call: (session, stage or None if gone).

        The first call (and the first after :meth:`restart_changes`) returns
        every session here: a full snapshot for a collector that starts empty.
        """
        changed = self._changed
        if changed is None:
            self._changed = set()
            return list(self._deepest.items())
        if not changed:
            return []
        self._changed = set()
        deepest = self._deepest
        return [(session, deepest.get(session)) for session in changed]

    def restart_changes(self) -> None:
        """A new collector takes over: its next drain gets a full snapshot."""
        self._changed = None

    def future_metrics(self, now: float) -> list[FutureMetrics]:
        """Every live call here (queued in queue order, then running): O(calls), for policies that ask."""
        self.apply_priorities()
        out = [self._future(entry, now, "queued") for _, _, entry in sorted(self._live_items())]
        out += [self._future(entry, now, "running") for entry in self.running_entries.values()]
        return out

    def oldest_queued(self, n: int, now: float) -> list[FutureMetrics]:
        """The ``n`` longest-waiting queued calls here, oldest first."""
        self.apply_priorities()
        return [self._future(e, now, "queued") for e in heapq.nsmallest(n, self._live(), key=lambda e: e.created)]

    def _future(self, entry: QueuedCall, now: float, status: str) -> FutureMetrics:
        call = entry.call
        return FutureMetrics(entry.future_id, call.session, call.request, self.spec.name, self.id,
                             call.stage, entry.priority, now - entry.created, status)

    # -- running calls -------------------------------------------------------------

    def _pop(self) -> QueuedCall:
        while True:
            item = heapq.heappop(self._queue)
            entry = item[2]
            if entry.heap_item is item:
                self._unqueue(entry)
                return entry

    def _pump(self) -> None:
        if self._pending:
            self.apply_priorities()
        while self.running < self.limit and self._queued and self.worker.alive:
            entry = self._pop()
            self.running += 1
            if self.spec.directives.batchable and self.backend.batching:
                batch = [entry, *self._take(_same_method(entry, self.backend.max_batch - 1))]
                self.backend.nursery.start_soon(self._dispatch_batch, batch)
            else:
                self._start(entry)

    async def _dispatch_batch(self, batch: list[QueuedCall]) -> None:
        """Queued calls of one method, merged into one batched call (one slot)."""
        started = trio.current_time()
        for entry in batch:
            entry.in_batch, entry.started = True, started
            self.running_entries[entry.future_id] = entry
            if entry.call.span is not None:
                _telemetry.call_started(entry.call.span, self.id, self.worker.id, started - entry.created)
        try:
            await self.backend.send_batch(self, batch)
            for entry in batch:
                await entry.returned.wait()
        finally:
            finished = trio.current_time()
            observer = self.backend.call_observer
            for entry in batch:
                del self.running_entries[entry.future_id]
                self._forget(entry)
                if observer is not None:
                    observer(self.spec.name, self.spec.kind, started - entry.created, finished - entry.created)
            self.running -= 1
            self.completed += len(batch)
            self.batches += 1
            self.busy_seconds += finished - started
            self._pump()

    def _start(self, entry: QueuedCall) -> None:
        """Send a call to the worker now (no task: this is every call's hot path)."""
        call = entry.call
        entry.started = trio.current_time()
        self.running_entries[entry.future_id] = entry
        if call.span is not None:
            _telemetry.call_started(call.span, self.id, self.worker.id, entry.started - entry.created)
        state = self.backend.store.load(call.session, self.spec.key) if self.spec.managed else None
        self.backend.send_run(self, entry, state)

    def release(self, entry: QueuedCall) -> None:
        """The worker gave the call back (done, preempted or lost): free its slot."""
        if entry.in_batch:
            entry.in_batch = False
            entry.returned.set()
            return
        finished = trio.current_time()
        tracer = self.backend.tracer
        call = entry.call
        if tracer is not None:
            tracer.call(
                future=call.future_id or entry.future_id, label=call.label, instance=self.id,
                process=self.worker.pid, process_name=f"worker {self.worker.id}",
                created=entry.created, started=entry.started, finished=finished, session=call.session,
                request=call.request, stage=call.stage, depends_on=call.depends_on, ok=entry.ok,
            )
        observer = self.backend.call_observer
        if observer is not None:
            observer(self.spec.name, self.spec.kind, entry.started - entry.created, finished - entry.created)
        self.running_entries.pop(entry.future_id, None)
        self._forget(entry)
        self.running -= 1
        self.completed += 1
        self.busy_seconds += finished - entry.started
        self.latency_ms = 0.8 * self.latency_ms + 0.2 * (finished - entry.created) * 1000
        self._pump()


def _same_method(first: QueuedCall, room: int) -> Callable[[QueuedCall], bool]:
    """Selects up to ``room`` queued calls of ``first``'s method (for one batch)."""
    left = [room]

    def wanted(entry: QueuedCall) -> bool:
        if left[0] > 0 and entry.call.method == first.call.method:
            left[0] -= 1
            return True
        return False

    return wanted
