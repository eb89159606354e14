"""Two-level control: the node store and the global controller.

Component-level controllers (:class:`~nalarc.executor._instance.InstanceController`)
decide event by event, reading the decisions in the :class:`NodeStore`.  The
:class:`GlobalController` runs a periodic, single-threaded loop off the
critical path: it collects a :class:`~nalarc.policies.MetricsView` from the
node store, runs the policy, and writes its decisions back into the store
(and performs migrations, which the controllers carry out locally).

State (in :class:`Decisions`):
    ``routes``      (session, component name) -> instance id
    ``weights``     component name -> (instance ids, weights)
    ``priorities``  (session, component name or None) -> priority
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .._errors import PolicyError
from ..policies import Control, MetricsView, Policy

if TYPE_CHECKING:
    from ._instance import InstanceController
    from ._process import ProcessBackend


@dataclass
class Decisions:
    routes: dict[tuple[str, str], str] = field(default_factory=dict)
    weights: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)
    priorities: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def priority(self, session: str, component: str) -> int:
        specific = self.priorities.get((session, component))
        return specific if specific is not None else self.priorities.get((session, None), 0)


@dataclass
class LoopTiming:
    """How long the last rounds of the global loop took (seconds)."""

    collect: float = 0.0
    policy: float = 0.0
    rounds: int = 0


class NodeStore:
    """Telemetry and decisions between the two levels of control (one node here)."""

    def __init__(self) -> None:
        self.decisions = Decisions()
        self.rng = random.Random(0)

    def pick_weighted(self, candidates: list[str], component: str) -> str | None:
        installed = self.decisions.weights.get(component)
        if installed is None:
            return None
        pairs = [(i, w) for i, w in zip(*installed) if i in candidates and w > 0]
        if not pairs:
            return None
        ids = [i for i, _ in pairs]
        chosen: str = self.rng.choices(ids, [w for _, w in pairs])[0]
        return chosen


class GlobalController(Control):
    """Runs the policy every ``interval`` seconds; implements the policy API."""

    def __init__(self, backend: ProcessBackend, policy: Policy, interval: float = 0.1) -> None:
        self.backend, self.policy, self.interval = backend, policy, interval
        self.timing = LoopTiming()

    @property
    def decisions(self) -> Decisions:
        return self.backend.node_store.decisions

    async def run(self) -> None:
        while True:
            await trio.sleep(self.interval)
            self.step()

    def step(self) -> None:
        """One round: collect, decide, install."""
        started = time.perf_counter()
        view = self.collect()
        collected = time.perf_counter()
        try:
            self.policy.step(view, self)
        except Exception as exc:
            raise PolicyError(f"policy {self.policy.name!r} raised in step(): {exc!r}") from exc
        self.timing.collect = collected - started
        self.timing.policy = time.perf_counter() - collected
        self.timing.rounds += 1

    def collect(self) -> MetricsView:
        now = trio.current_time()
        instances = {i.id: i.metrics() for i in self.backend.instances.values()}
        futures = tuple(f for c in self.backend.instances.values() for f in c.future_metrics(now))
        return MetricsView(now, instances, futures)

    # -- the policy API -------------------------------------------------------

    def _instance(self, instance: str) -> InstanceController[Any]:
        found = self.backend.instances.get(instance)
        if found is None:
            raise PolicyError(f"no instance {instance!r}; known: {', '.join(sorted(self.backend.instances))}")
        return found

    def route(self, session: str, agent: str, instance: str) -> None:
        target = self._instance(instance)
        if target.spec.name != agent:
            raise PolicyError(f"instance {instance!r} runs {target.spec.name!r}, not {agent!r}")
        self.decisions.routes[(session, agent)] = instance

    def route_weights(self, agent: str, instances: Sequence[str], weights: Sequence[float]) -> None:
        if len(instances) != len(weights):
            raise PolicyError("route_weights: one weight per instance")
        for instance in instances:
            self._instance(instance)
        self.decisions.weights[agent] = (list(instances), [float(w) for w in weights])

    def set_priority(self, session: str, priority: int, agent: str | None = None) -> None:
        self.decisions.priorities[(session, agent)] = priority
        for controller in self.backend.instances.values():
            if agent is None or controller.spec.name == agent:
                controller.reprioritize(session, self.decisions.priority(session, controller.spec.name))

    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        source, target = self._instance(src), self._instance(dst)
        if source.spec.key != target.spec.key or source is target:
            raise PolicyError(f"cannot migrate from {src!r} to {dst!r}: not two instances of one component")
        if source.spec.directives.stateful:
            return False  # stateful agents never migrate
        moved = source.take(lambda e: session_or_future in (e.call.session, e.future_id))
        for entry in moved:
            target.submit(entry)
        if not any(e.future_id == session_or_future for e in moved):
            # A session: its later calls follow it (its managed state lives in the store).
            self.decisions.routes[(session_or_future, source.spec.name)] = dst
            self.backend.sticky[(session_or_future, source.spec.key)] = dst
        return bool(moved) or (session_or_future, source.spec.name) in self.decisions.routes

    def kill(self, instance: str) -> bool:
        controller = self._instance(instance)
        siblings = [i for i in self.backend.by_component[controller.spec.key] if i != instance]
        if len(siblings) < max(1, controller.spec.directives.min_instances) or controller.spec.directives.stateful:
            return False
        self.backend.retire(controller)
        return True

    def provision(self, agent: str, node: str | None = None) -> str | None:
        return self.backend.provision(agent, node)
