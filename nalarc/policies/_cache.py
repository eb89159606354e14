"""Cache-aware placement: a session's calls go where its KV-cache prefix is, unless the wait there costs more.

In the style of SGLang's cache-aware router and llm-d's scorer, with both
sides of the trade in seconds, read from the view:

* what the cache saves on an instance: the ``rewarm_s`` of the session's
  resident prefix there (``MetricsView.residency``, as the engines reported it);
* what the load costs: the expected queueing delay of one more call there,
  ``max(0, load + 1 - capacity)`` calls ahead of it, each holding a slot for
  the instance's recent mean latency (``latency_ms / capacity`` per call).

Routing: every session with a prefix worth keeping (``rewarm_s >=
min_rewarm_s``) on an instance is routed, every round, to the instance with
the best ``hit_weight * saved - load_weight * wait``.  The route is in place
before the session's next call is even made (a compiled workflow makes its
calls as futures when the request starts, so that is when they are routed).
An instance loaded beyond ``overload`` times its slots earns no cache credit,
so the session falls back to the least-loaded instance.  A round costs
O(resident sessions x instances), bounded by the engines' cache capacity.

Migration: a call queued behind others moves to an idle instance (one call
each, as head-of-line migration does) only when the wait it would save is
larger than the re-warm it would pay there (the prefix it leaves behind, less
whatever the target holds).  This replaces head-of-line migration, which
moves calls blind to the cache; with no prefix worth keeping it does the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._api import CachedPrefix, Control, InstanceMetrics, MetricsView, Policy

_NONE = CachedPrefix(0, 0.0)


class CacheAware(Policy):
    """Prefix affinity against load, for routing and for migration (see the module docstring)."""

    name = "cache-aware"

    def __init__(self, hit_weight: float = 1.0, load_weight: float = 1.0, overload: float = 2.0,
                 min_rewarm_s: float = 0.002) -> None:
        self.hit_weight, self.load_weight = hit_weight, load_weight
        self.overload, self.min_rewarm_s = overload, min_rewarm_s

    def step(self, view: MetricsView, control: Control) -> None:
        for component in view.components():
            instances = [i for i in view.of(component) if not i.stateful]
            if len(instances) < 2:
                continue
            self._route(view, control, component, instances)
            self._migrate(view, control, instances)

    # -- the two sides of the trade, in seconds --------------------------------------

    def wait_s(self, instance: InstanceMetrics, ahead: int | None = None) -> float:
        """Expected queueing delay of a call with ``ahead`` calls before it (default: one more call now)."""
        if ahead is None:
            ahead = max(0, instance.load + 1 - instance.capacity)
        return ahead * instance.latency_ms / 1000 / max(instance.capacity, 1)

    def score(self, instance: InstanceMetrics, cached: CachedPrefix) -> float:
        """What sending the session's next call to ``instance`` is worth (higher is better)."""
        overloaded = instance.load >= self.overload * instance.capacity
        saved = 0.0 if overloaded else cached.rewarm_s
        return self.hit_weight * saved - self.load_weight * self.wait_s(instance)

    # -- routing -------------------------------------------------------------------

    def _route(self, view: MetricsView, control: Control, component: str,
               instances: list[InstanceMetrics]) -> None:
        holding = {i.id: view.residency.get(i.id, {}) for i in instances}
        sessions = {s for held in holding.values() for s, prefix in held.items() if prefix.rewarm_s >= self.min_rewarm_s}
        for session in sessions:
            best = self.best(instances, holding, session)
            control.route(session, component, best.id)

    def best(self, instances: list[InstanceMetrics], holding: Mapping[str, Mapping[str, CachedPrefix]],
             session: str) -> InstanceMetrics:
        """The instance with the best score for ``session`` (ties: the least loaded, as ``view.of`` sorts)."""
        return max(instances, key=lambda i: (self.score(i, holding[i.id].get(session, _NONE)), -i.load))

    # -- migration -----------------------------------------------------------------

    def _migrate(self, view: MetricsView, control: Control, instances: list[InstanceMetrics]) -> None:
        # Idle instances only, one call each, as head-of-line migration: calls queued at a busy
        # instance may batch together there, and a target with calls of its own is no sure gain.
        free = {i.id: 1 for i in instances if i.load == 0}
        if not free:
            return
        for busy in (i for i in instances if i.queue_length > 0):
            held = view.residency.get(busy.id, {})
            for position, future in enumerate(view.queued(busy.id, min(busy.queue_length, sum(free.values())))):
                target = self._target(view, free, future.session, busy.id)
                if target is None:
                    return
                loss = held.get(future.session, _NONE).rewarm_s - view.residency.get(target, {}).get(
                    future.session, _NONE).rewarm_s
                if self.load_weight * self.wait_s(busy, position + 1) > self.hit_weight * loss \
                        and control.migrate(future.id, busy.id, target):
                    free[target] -= 1

    @staticmethod
    def _target(view: MetricsView, free: dict[str, int], session: str, source: str) -> str | None:
        """The idle instance that holds most of ``session``'s prefix."""
        open_slots = [i for i, n in free.items() if n > 0 and i != source]
        if not open_slots:
            return None
        return max(open_slots, key=lambda i: (view.residency.get(i, {}).get(session, _NONE).rewarm_s, free[i]))
