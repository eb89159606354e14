"""The policy API: what a global-controller policy sees and what it may do.

This is the paper's Table 2.  A policy is a small class with one method,
``step(view, control)``, called by the global controller every interval
(default 100 ms) with a read-only :class:`MetricsView` of the whole system and
a :class:`Control` whose calls install decisions that component-level
controllers enforce event by event.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field


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
    #: Sessions with a call waiting in the queue.
    waiting_sessions: frozenset[str]
    #: Mean latency of recent calls (queue + run), milliseconds.
    latency_ms: float
    #: Share of the last interval spent running calls (0..capacity).
    utilization: float

    @property
    def load(self) -> int:
        return self.queue_length + self.running


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


@dataclass(frozen=True, slots=True)
class MetricsView:
    """A consistent snapshot of the system for one policy step."""

    now: float
    instances: dict[str, InstanceMetrics]
    futures: tuple[FutureMetrics, ...] = field(default=())

    def of(self, component: str) -> list[InstanceMetrics]:
        """Live instances of ``component`` (by name), least loaded first."""
        found = [i for i in self.instances.values() if i.component == component and i.alive]
        return sorted(found, key=lambda i: (i.load, i.id))

    def components(self) -> list[str]:
        return sorted({i.component for i in self.instances.values()})


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
        """Higher runs first: everywhere, or only at ``agent``."""

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
