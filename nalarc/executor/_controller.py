"""Two-level control: the node store and the global controller.

Component-level controllers (:class:`~nalarc.executor._instance.InstanceController`)
decide event by event, reading the decisions in their :class:`NodeStore`.  The
:class:`GlobalController` runs a periodic, single-threaded loop off the
critical path: it collects a :class:`~nalarc.policies.MetricsView` from the
node stores, runs the policy, and writes its decisions back (and performs
migrations, which the controllers carry out locally).

Collection is incremental.  Each component-level controller keeps, per
session, the deepest stage of its live calls, and remembers which sessions
changed; the global controller merges only those deltas, so a round costs
O(instances + changes), not O(futures).  Priorities it installs are applied
by each component-level controller before its next pop, so the loop never
walks a queue.

State:
    :class:`Decisions` (shared by every node store of one driver)
        ``routes``      (session, component name) -> instance id
        ``weights``     component name -> (instance ids, weights)
        ``priorities``  (session, component name or None) -> priority
    :class:`GlobalController`
        ``_holders``    (session, component name) -> {instance id: deepest stage there}
        ``_stages``     (session, component name) -> deepest stage anywhere
                        (the view's ``session_stages``)
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .. import _telemetry
from .._errors import PolicyError
from ..policies import Control, FutureMetrics, MetricsView, Policy

if TYPE_CHECKING:
    from ._instance import InstanceController


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
    """How long the last round of the global loop took (seconds), and what it merged."""

    collect: float = 0.0
    policy: float = 0.0
    rounds: int = 0
    #: (session, instance) deltas merged by the last collection.
    changes: int = 0


class NodeStore:
    """Telemetry and decisions between the two levels of control, for the instances of one node.

    Component-level controllers attach here when created and publish their
    deltas through it; the global controller drains them and installs
    :class:`Decisions` (one object shared by every node store of a driver, as
    the paper's logically central store).
    """

    def __init__(self, decisions: Decisions | None = None, seed: int = 0) -> None:
        self.decisions = decisions if decisions is not None else Decisions()
        self.rng = random.Random(seed)
        self.controllers: dict[str, InstanceController[Any]] = {}
        #: component -> (the installed weights it was built from, ids, cumulative weights)
        self._cumulative: dict[str, tuple[object, list[str], list[float]]] = {}

    def attach(self, controller: InstanceController[Any]) -> None:
        self.controllers[controller.id] = controller

    def pick_weighted(self, candidates: list[str], component: str) -> str | None:
        """An instance drawn by the installed weights (None if none apply): O(log instances) when the draw is a candidate."""
        installed = self.decisions.weights.get(component)
        if installed is None:
            return None
        cached = self._cumulative.get(component)
        if cached is None or cached[0] is not installed:
            positive = [(i, w) for i, w in zip(*installed) if w > 0]
            cached = (installed, [i for i, _ in positive], list(itertools.accumulate(w for _, w in positive)))
            self._cumulative[component] = cached
        _, ids, cumulative = cached
        if not ids:
            return None
        chosen = ids[bisect.bisect(cumulative, self.rng.random() * cumulative[-1])]
        if chosen in candidates:
            return chosen
        # An installed instance is gone: draw again among the live candidates only.
        pairs = [(i, w) for i, w in zip(*installed) if i in candidates and w > 0]
        if not pairs:
            return None
        picked: str = self.rng.choices([i for i, _ in pairs], [w for _, w in pairs])[0]
        return picked


class Cluster(Protocol):
    """What the global controller acts on: the backend's instances and placement."""

    node_store: NodeStore

    @property
    def instances(self) -> Mapping[str, InstanceController[Any]]: ...

    @property
    def by_component(self) -> Mapping[str, list[str]]: ...

    @property
    def sticky(self) -> dict[tuple[str, str], str]: ...

    def retire(self, controller: InstanceController[Any]) -> None: ...

    def provision(self, name: str, node: str | None = None) -> str | None: ...


class GlobalController(Control):
    """Runs the policy every ``interval`` seconds; implements the policy API (see the module docstring).

    One global controller collects from a set of node stores at a time:
    creating one restarts the stores' telemetry with a full snapshot for it.
    """

    def __init__(self, backend: Cluster, policy: Policy, interval: float = 0.1,
                 node_stores: Sequence[NodeStore] | None = None) -> None:
        self.backend, self.policy, self.interval = backend, policy, interval
        self.node_stores = list(node_stores) if node_stores is not None else [backend.node_store]
        self._decisions = backend.node_store.decisions  # read on every set_priority: no attribute chain
        self.timing = LoopTiming()
        self._holders: dict[tuple[str, str], dict[str, int]] = {}
        self._stages: dict[tuple[str, str], int] = {}
        self._stale = True  # instances may have changed since the last merge
        #: Stage changes merged while a policy runs: applied after its step, so the
        #: view's ``session_stages`` holds still while a policy iterates it.
        self._deferred: dict[tuple[str, str], int | None] | None = None
        for store in self.node_stores:
            for controller in store.controllers.values():
                controller.restart_changes()

    @property
    def decisions(self) -> Decisions:
        return self._decisions

    @property
    def session_stages(self) -> Mapping[tuple[str, str], int]:
        """(session, component) -> deepest live stage, as of the last collection (read-only)."""
        return MappingProxyType(self._stages)

    async def run(self) -> None:
        while True:
            await trio.sleep(self.interval)
            self.step()

    def step(self) -> None:
        """One round: collect, decide, install."""
        started = time.perf_counter()
        view = self.collect()
        collected = time.perf_counter()
        self._deferred = {}
        try:
            self.policy.step(view, self)
        except Exception as exc:
            raise PolicyError(f"policy {self.policy.name!r} raised in step(): {exc!r}") from exc
        finally:
            self._apply_deferred()
            self._stale = True  # calls arrive and leave between rounds
        self.timing.collect = collected - started
        self.timing.policy = time.perf_counter() - collected
        self.timing.rounds += 1

    # -- collection ----------------------------------------------------------------

    def collect(self) -> MetricsView:
        """The view for one round: every instance's metrics, and the session aggregates brought up to date."""
        now = trio.current_time()
        self.timing.changes = self._sync()
        router = getattr(self.backend, "router", None)  # a backend that places calls early (push readiness)
        placed: Mapping[str, int] = router.placed if router is not None else {}
        instances = {i: c.metrics(placed.get(i, 0)) for i, c in self.backend.instances.items()}
        residency = getattr(self.backend, "residency", None)  # a backend whose engines report (not the emulator)
        return MetricsView(now, instances, session_stages=self._stages, detail=self,
                           residency=residency.view() if residency is not None else None)

    def _sync(self) -> int:
        """Merge the deltas of every instance since the last merge; returns how many."""
        merged = 0
        for store in self.node_stores:
            for controller in store.controllers.values():
                changes = controller.drain_changes()
                if changes:
                    merged += len(changes)
                    self._merge(controller.id, controller.spec.name, changes)
        self._stale = False
        return merged

    def _merge(self, instance: str, component: str, changes: list[tuple[str, int | None]]) -> None:
        holders = self._holders
        stages: dict[tuple[str, str], int | None] | dict[tuple[str, str], int]
        stages = self._deferred if self._deferred is not None else self._stages
        for session, stage in changes:
            key = (session, component)
            held = holders.get(key)
            if held is None:
                if stage is not None:
                    holders[key] = {instance: stage}
                    stages[key] = stage
                continue
            if stage is not None:
                held[instance] = stage
            else:
                held.pop(instance, None)
                if not held:
                    del holders[key]
                    if self._deferred is not None:
                        self._deferred[key] = None
                    else:
                        del self._stages[key]
                    continue
            stages[key] = max(held.values())

    def _apply_deferred(self) -> None:
        deferred, self._deferred = self._deferred, None
        for key, stage in (deferred or {}).items():
            if stage is None:
                self._stages.pop(key, None)
            else:
                self._stages[key] = stage

    # -- per-future detail, on demand (the view's FutureDetail) ---------------------

    def futures_at(self, instance: str, now: float) -> list[FutureMetrics]:
        controller = self.backend.instances.get(instance)
        return controller.future_metrics(now) if controller is not None else []

    def oldest_queued(self, instance: str, n: int, now: float) -> list[FutureMetrics]:
        controller = self.backend.instances.get(instance)
        return controller.oldest_queued(n, now) if controller is not None else []

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
        """Installs the priority; only the instances holding the session's calls are told (they apply it lazily)."""
        priorities = self._decisions.priorities
        if priorities.get((session, agent)) == priority:
            return  # already installed: the common case when a policy restates its decisions
        priorities[(session, agent)] = priority
        if self._stale:
            self._sync()
        components = [agent] if agent is not None else {c.spec.name for c in self.backend.instances.values()}
        for component in components:
            held = self._holders.get((session, component))
            if not held:
                continue
            effective = self.decisions.priority(session, component)
            for instance in held:
                controller = self.backend.instances.get(instance)
                if controller is not None:
                    controller.reprioritize(session, effective)

    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        source, target = self._instance(src), self._instance(dst)
        if source.spec.key != target.spec.key or source is target:
            raise PolicyError(f"cannot migrate from {src!r} to {dst!r}: not two instances of one component")
        if source.spec.directives.stateful:
            return False  # stateful agents never migrate
        moved = source.take_session(session_or_future) or source.take_future(session_or_future)
        for entry in moved:
            _telemetry.call_migrated(entry.call.span)
            target.submit(entry)
        self._stale = True
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
        self._stale = True
        return True

    def provision(self, agent: str, node: str | None = None) -> str | None:
        return self.backend.provision(agent, node)
