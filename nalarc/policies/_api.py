"""The policy API: what a global-controller policy sees and what it may do.

This is the paper's Table 2.  A policy is a small class with one method,
``step(view, control)``, called by the global controller every interval
(default 100 ms) with a read-only :class:`MetricsView` of the whole system and
a :class:`Control` whose calls install decisions that component-level
controllers enforce event by event.

What a view costs: ``instances`` and ``session_stages`` are kept up to date
incrementally by the global controller (a round costs O(instances + what
changed since the last round), not O(futures)).  Per-future detail,
:meth:`MetricsView.queued` and :attr:`MetricsView.futures`, is read from the
component-level controllers only when a policy asks for it; prefer the
aggregates in a policy that must stay cheap at 100K futures.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, final


@dataclass(frozen=True, slots=True)
class InstanceMetrics:
    """One instance, as its component-level controller last published it."""

    id: str
    #: Component name (``Planner``, ``search``).
    component: str
    kind: str
    worker: str
    alive: bool
    stateful: bool
    queue_length: int
    running: int
    #: Calls the instance may run at once.
    capacity: int
    completed: int
    #: Sessions with a call waiting in the queue (a live set in the executor:
    #: valid during the policy step; copy it to keep it).
    waiting_sessions: AbstractSet[str]
    #: Mean latency of recent calls (queue + run), milliseconds.
    latency_ms: float
    #: Share of the last interval spent running calls (0..capacity).
    utilization: float
    #: Calls already made and routed here that wait for their inputs: the work the
    #: compiled workflow will bring next (lookahead; counted in neither queue nor load).
    pending: int = 0

    @property
    def load(self) -> int:
        return self.queue_length + self.running


@dataclass(frozen=True, slots=True)
class CachedPrefix:
    """A session's prefix resident in one instance's KV cache (its engines' last report)."""

    #: Prefix tokens cached (summed over the instance's models).
    tokens: int
    #: What serving them uncached would add to the session's next prefill there,
    #: in real seconds: the cost of moving the session elsewhere (re-warming).
    rewarm_s: float


@dataclass(frozen=True, slots=True)
class FutureMetrics:
    """One queued or running call."""

    id: str
    session: str
    request: str
    component: str
    instance: str
    #: Depth in the app's call graph (workflow calls are stage 1).
    stage: int
    priority: int
    #: Seconds since the call was made.
    age: float
    status: str  # "queued" | "running"


class FutureDetail(Protocol):
    """Where a view reads per-future detail on demand (the component-level controllers)."""

    def futures_at(self, instance: str, now: float) -> Sequence[FutureMetrics]:
        """Every live call at ``instance``: queued ones in queue order, then running ones."""

    def oldest_queued(self, instance: str, n: int, now: float) -> Sequence[FutureMetrics]:
        """The ``n`` longest-waiting queued calls at ``instance``, oldest first."""


@final
class MetricsView:
    """The system for one policy step.

    Attributes:
        now: The controller's clock (``trio.current_time()``) at collection.
        instances: Instance id -> its :class:`InstanceMetrics`.
        session_stages: ``(session, component name)`` -> the deepest stage
            (depth in the call graph) among the session's live (queued or
            running) calls at that component.  Maintained from deltas: reading
            it is free, iterating it is O(sessions).
        residency: Instance id -> session -> :class:`CachedPrefix`: the KV-cache
            prefixes each instance's model servers hold, as the engines
            reported them on the results of the calls that changed them (so
            as fresh as the last call, and free to read: the executor's live
            table, valid during the policy step).  Empty when no engine
            reports (a real endpoint, tools).

    Build one from explicit ``futures`` (tests, simulations) or, as the
    executor does, from aggregates plus a :class:`FutureDetail` that serves
    per-future detail lazily.
    """

    __slots__ = ("now", "instances", "session_stages", "residency", "_detail", "_futures")

    def __init__(
        self,
        now: float,
        instances: dict[str, InstanceMetrics],
        futures: Sequence[FutureMetrics] | None = None,
        *,
        session_stages: Mapping[tuple[str, str], int] | None = None,
        detail: FutureDetail | None = None,
        residency: Mapping[str, Mapping[str, CachedPrefix]] | None = None,
    ) -> None:
        self.now, self.instances = now, instances
        self._futures = tuple(futures) if futures is not None else None
        self._detail = detail if detail is not None else _FutureList(self._futures or ())
        stages = session_stages if session_stages is not None else _deepest_stages(self._futures or ())
        self.session_stages: Mapping[tuple[str, str], int] = MappingProxyType(stages)  # read-only
        self.residency: Mapping[str, Mapping[str, CachedPrefix]] = MappingProxyType(residency or {})  # no copy

    @property
    def futures(self) -> tuple[FutureMetrics, ...]:
        """Every live call in the system.  O(futures): built on first use, then cached."""
        if self._futures is None:
            self._futures = tuple(f for i in self.instances for f in self._detail.futures_at(i, self.now))
        return self._futures

    def queued(self, instance: str, n: int) -> list[FutureMetrics]:
        """The ``n`` longest-waiting queued calls at ``instance``, oldest first (O(its queue))."""
        return list(self._detail.oldest_queued(instance, n, self.now)) if n > 0 else []

    def of(self, component: str) -> list[InstanceMetrics]:
        """Live instances of ``component`` (by name), least loaded first."""
        found = [i for i in self.instances.values() if i.component == component and i.alive]
        return sorted(found, key=lambda i: (i.load, i.id))

    def components(self) -> list[str]:
        return sorted({i.component for i in self.instances.values()})


class _FutureList:
    """Per-future detail from an explicit list of futures (a view built by hand)."""

    def __init__(self, futures: Sequence[FutureMetrics]) -> None:
        self.futures = futures

    def futures_at(self, instance: str, now: float) -> list[FutureMetrics]:
        return [f for f in self.futures if f.instance == instance]

    def oldest_queued(self, instance: str, n: int, now: float) -> list[FutureMetrics]:
        queued = [f for f in self.futures if f.instance == instance and f.status == "queued"]
        return sorted(queued, key=lambda f: -f.age)[:n]


def _deepest_stages(futures: Sequence[FutureMetrics]) -> dict[tuple[str, str], int]:
    deepest: dict[tuple[str, str], int] = {}
    for f in futures:
        key = (f.session, f.component)
        deepest[key] = max(deepest.get(key, f.stage), f.stage)
    return deepest


class Control(abc.ABC):
    """Decisions a policy can install (the paper's Table 2)."""

    @abc.abstractmethod
    def route(self, session: str, agent: str, instance: str) -> None:
        """Send every call of ``session`` to ``agent`` to ``instance``."""

    @abc.abstractmethod
    def route_weights(self, agent: str, instances: Sequence[str], weights: Sequence[float]) -> None:
        """Spread new calls to ``agent`` over ``instances`` in proportion to ``weights``."""

    @abc.abstractmethod
    def set_priority(self, session: str, priority: int, agent: str | None = None) -> None:
        """Higher runs first: everywhere, or only at ``agent``.

        Setting the priority a session already has costs a dictionary lookup,
        so a policy may restate all its priorities every round.
        """

    @abc.abstractmethod
    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        """Move a session's queued calls (or one queued future) from ``src`` to ``dst``.

        Returns False when refused: stateful agents never migrate, and running
        calls are not moved.
        """

    @abc.abstractmethod
    def kill(self, instance: str) -> bool:
        """Stop an instance (its queued calls move to siblings); False below min_instances."""

    @abc.abstractmethod
    def provision(self, agent: str, node: str | None = None) -> str | None:
        """Start an instance of ``agent`` (on worker ``node``); None at max_instances."""


class Policy(abc.ABC):
    """A global-controller policy: decide from a view, through a control."""

    #: Name used by ``--policy``.
    name: str = "policy"

    @abc.abstractmethod
    def step(self, view: MetricsView, control: Control) -> None:
        """Called once per interval; must be fast (it is off the critical path, not free)."""
