"""The component-level controller: one per instance, event by event.

It owns the instance's priority queue and concurrency limit, merges queued
calls of a ``batchable`` agent into one batch, preempts for ``preemptable``
agents, and publishes the metrics the global controller reads.  It talks to
workers only through its :class:`InstanceHost` (the backend), so placement and
transport can change without touching it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import trio

from .._api import ComponentSpec
from ..policies import FutureMetrics, InstanceMetrics
from . import _rt
from ._statestore import StateStore
from ._trace import Tracer

_future_ids = itertools.count(1)


@dataclass
class QueuedCall:
    """A call at an instance: its metadata moves with it when it migrates."""

    call: _rt.CallRecord
    priority: int
    done: trio.Event = field(default_factory=trio.Event)
    ok: bool = False
    payload: Any = None
    text: str = ""
    attempts: int = 0
    future_id: str = field(default_factory=lambda: f"F{next(_future_ids)}")
    created: float = field(default_factory=trio.current_time)
    #: The instance was asked to preempt this call: a failure re-queues it.
    preempted: bool = False
    #: Set when the instance gives the call back (batched calls only).
    returned: trio.Event = field(default_factory=trio.Event)
    in_batch: bool = False
    started: float = 0.0


class WorkerLike(Protocol):
    """Where an instance runs, as its controller sees it."""

    id: str
    alive: bool

    @property
    def pid(self) -> int: ...


W = TypeVar("W", bound=WorkerLike)


class InstanceHost(Protocol):
    """What a component-level controller needs from its backend (placement and transport)."""

    store: StateStore
    tracer: Tracer | None
    max_batch: int
    batching: bool

    @property
    def nursery(self) -> trio.Nursery: ...

    def send_run(self, controller: InstanceController[Any], entry: QueuedCall, state: Any) -> None: ...

    async def send_batch(self, controller: InstanceController[Any], batch: list[QueuedCall]) -> None: ...

    async def send_preempt(self, controller: InstanceController[Any], hook: str) -> None: ...


class InstanceController(Generic[W]):
    """The component-level controller of one instance: queue, limit, metrics."""

    def __init__(self, backend: InstanceHost, instance_id: str, spec: ComponentSpec, worker: W, limit: int) -> None:
        self.backend, self.id, self.spec, self.worker, self.limit = backend, instance_id, spec, worker, limit
        self._queue: list[tuple[int, int, QueuedCall]] = []
        self._order = itertools.count()
        self.running = 0
        self.running_entries: dict[str, QueuedCall] = {}
        self.completed = 0
        self.busy_seconds = 0.0
        self.latency_ms = 0.0
        self.batches = 0
        self.retired = False
        self._busy_mark = (trio.current_time(), 0.0)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def load(self) -> int:
        return len(self._queue) + self.running

    def waiting_sessions(self) -> set[str]:
        return {entry.call.session for _, _, entry in self._queue}

    def submit(self, entry: QueuedCall) -> None:
        heapq.heappush(self._queue, (-entry.priority, next(self._order), entry))
        self._maybe_preempt(entry)
        self._pump()

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

    def take_queued(self) -> list[QueuedCall]:
        """Remove and return every queued (not running) call, for migration."""
        return self.take(lambda entry: True)

    def take(self, wanted: Callable[[QueuedCall], bool]) -> list[QueuedCall]:
        """Remove and return the queued calls ``wanted`` selects (in queue order)."""
        taken: list[tuple[int, int, QueuedCall]] = []
        kept: list[tuple[int, int, QueuedCall]] = []
        for item in sorted(self._queue):  # queue order, each call asked once
            (taken if wanted(item[2]) else kept).append(item)
        if taken:
            self._queue = kept
            heapq.heapify(self._queue)
        return [entry for _, _, entry in taken]

    def reprioritize(self, session: str, priority: int) -> None:
        changed = False
        for index, (_, order, entry) in enumerate(self._queue):
            if entry.call.session == session and entry.priority != priority:
                entry.priority = priority
                self._queue[index] = (-priority, order, entry)
                changed = True
        if changed:
            heapq.heapify(self._queue)

    def metrics(self) -> InstanceMetrics:
        """What this controller publishes to the node store."""
        now = trio.current_time()
        since, busy_before = self._busy_mark
        utilization = (self.busy_seconds - busy_before) / max(now - since, 1e-9)
        self._busy_mark = (now, self.busy_seconds)
        return InstanceMetrics(
            id=self.id, component=self.spec.name, kind=self.spec.kind, worker=self.worker.id,
            alive=self.worker.alive and not self.retired, stateful=self.spec.directives.stateful,
            queue_length=len(self._queue), running=self.running, capacity=self.limit,
            completed=self.completed, waiting_sessions=frozenset(self.waiting_sessions()),
            latency_ms=self.latency_ms, utilization=utilization,
        )

    def future_metrics(self, now: float) -> list[FutureMetrics]:
        out = [self._future(entry, now, "queued") for _, _, entry in self._queue]
        out += [self._future(entry, now, "running") for entry in self.running_entries.values()]
        return out

    def _future(self, entry: QueuedCall, now: float, status: str) -> FutureMetrics:
        call = entry.call
        return FutureMetrics(entry.future_id, call.session, call.request, self.spec.name, self.id,
                             call.stage, entry.priority, now - entry.created, status)

    def _pump(self) -> None:
        while self.running < self.limit and self._queue and self.worker.alive:
            _, _, entry = heapq.heappop(self._queue)
            self.running += 1
            if self.spec.directives.batchable and self.backend.batching:
                batch = [entry, *self.take(_same_method(entry, self.backend.max_batch - 1))]
                self.backend.nursery.start_soon(self._dispatch_batch, batch)
            else:
                self._start(entry)

    async def _dispatch_batch(self, batch: list[QueuedCall]) -> None:
        """Queued calls of one method, merged into one batched call (one slot)."""
        started = trio.current_time()
        for entry in batch:
            entry.in_batch, entry.started = True, started
            self.running_entries[entry.future_id] = entry
        try:
            await self.backend.send_batch(self, batch)
            for entry in batch:
                await entry.returned.wait()
        finally:
            finished = trio.current_time()
            for entry in batch:
                del self.running_entries[entry.future_id]
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
        self.running_entries.pop(entry.future_id, None)
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


