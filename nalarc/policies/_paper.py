"""The paper's policies (§6.2, §8.5, §8.8) and the baselines that model other frameworks.

Each ``step`` reads the :class:`MetricsView` and calls the :class:`Control`;
each fits in about a dozen lines.  SRTF, session priority, resource
reassignment and the baselines read only aggregates, so a round stays cheap at
100K futures; head-of-line migration reads the oldest queued calls of busy
instances, and LPT every live future (O(futures) per round).
"""

from __future__ import annotations

import zlib
from collections import Counter

from ._api import Control, MetricsView, Policy


class HeadOfLineMigration(Policy):
    """A call queued behind others moves to an idle instance of the same agent."""

    name = "hol-migration"

    def step(self, view: MetricsView, control: Control) -> None:
        for component in view.components():
            instances = view.of(component)
            idle = [i for i in instances if i.load == 0]
            for busy in (i for i in instances if i.queue_length > 0 and not i.stateful):
                for future in view.queued(busy.id, len(idle)):
                    control.migrate(future.id, busy.id, idle.pop(0).id)


class ResourceReassignment(Policy):
    """Instances move from the least to the most loaded agent (within min/max)."""

    name = "reassign"
    threshold = 2.0  # queued calls per instance that count as overloaded

    def step(self, view: MetricsView, control: Control) -> None:
        def pressure(component: str) -> float:
            instances = view.of(component)
            return sum(i.queue_length for i in instances) / max(len(instances), 1)

        agents = sorted(view.components(), key=pressure)
        if len(agents) < 2 or pressure(agents[-1]) < self.threshold:
            return
        idle = [i for i in view.of(agents[0]) if i.load == 0]
        if idle and control.provision(agents[-1]) is not None:
            control.kill(idle[-1].id)


class SessionPriority(Policy):
    """Figure 6: one session goes first everywhere, and leaves busy instances for idle ones."""

    name = "session-priority"

    def __init__(self, session: str = "vip", priority: int = 10) -> None:
        self.session, self.priority = session, priority

    def step(self, view: MetricsView, control: Control) -> None:
        control.set_priority(self.session, self.priority)
        for component in view.components():
            idle = [i for i in view.of(component) if i.load == 0]
            for instance in view.of(component):
                if self.session in instance.waiting_sessions and idle and not instance.stateful:
                    control.migrate(self.session, instance.id, idle.pop(0).id)


class SRTF(Policy):
    """Shortest remaining time first: calls from later stages of the call graph go first."""

    name = "srtf"

    def step(self, view: MetricsView, control: Control) -> None:
        for (session, component), stage in view.session_stages.items():
            control.set_priority(session, stage, component)


class LPT(Policy):
    """Longest processing time first: jobs that re-enter an agent (failed, retried) go first."""

    name = "lpt"

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], set[str]] = {}

    def step(self, view: MetricsView, control: Control) -> None:
        visits: Counter[tuple[str, str]] = Counter()
        for f in view.futures:
            ids = self.seen.setdefault((f.request, f.component), set())
            ids.add(f.id)
            visits[(f.session, f.component)] = max(visits[(f.session, f.component)], len(ids))
        for (session, component), count in visits.items():
            control.set_priority(session, count - 1, agent=component)


class StickyFCFS(Policy):
    """Baseline (AutoGen/CrewAI-like): a session is pinned to one instance per agent, first come first served."""

    name = "sticky-fcfs"

    def step(self, view: MetricsView, control: Control) -> None:
        for session, component in view.session_stages:
            instances = sorted(i.id for i in view.instances.values() if i.component == component)
            pinned = instances[zlib.crc32(session.encode()) % len(instances)]
            control.route(session, component, pinned)


class RayLike(Policy):
    """Baseline (Ray-like): the shortest queue when a call is made; nothing moves afterwards.

    That is exactly what component-level controllers do with no decision
    installed, so this policy installs none: no weights, priorities or migrations.
    """

    name = "ray-like"

    def step(self, view: MetricsView, control: Control) -> None:
        return None
