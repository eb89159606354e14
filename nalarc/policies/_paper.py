"""The paper's policies (§6.2, §8.5, §8.8) and the baselines that model other frameworks.

Each ``step`` reads the :class:`MetricsView` and calls the :class:`Control`;
each fits in about a dozen lines.  SRTF, LPT, session priority, resource
reassignment and the baselines read only aggregates, so a round stays cheap at
100K futures; head-of-line migration reads the oldest queued calls of busy
instances.
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
    """An idle instance of a lightly pressured agent becomes one of the most pressured (GPUs stay constant).

    Lookahead: an agent with calls already made and waiting for their inputs
    (``pending``, from the compiled workflow's futures) is about to be busy, so
    it gives nothing away, however idle it is now.
    """

    name = "reassign"
    threshold = 2.0  # queued calls per instance that count as overloaded

    def step(self, view: MetricsView, control: Control) -> None:
        def pressure(agent: str) -> float:
            return sum(i.queue_length for i in view.of(agent)) / max(len(view.of(agent)), 1)

        agents = sorted((c for c in view.components() if view.of(c) and view.of(c)[0].kind == "agent"), key=pressure)
        if len(agents) < 2 or pressure(agents[-1]) < self.threshold:
            return
        donors = ([i for i in view.of(a) if i.load == 0] for a in agents[:-1]
                  if not any(i.pending for i in view.of(a)))
        idle = next((d for d in donors if d), None)
        if idle is None:
            return
        added = control.provision(agents[-1])
        if added is not None and not control.kill(idle[-1].id):
            control.kill(added)  # the donor is at min_instances: give the new one back


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
    """Longest processing time first: a job that comes back to an agent (a failed task re-entering) goes first."""

    name = "lpt"

    def __init__(self) -> None:
        self.returns: Counter[tuple[str, str]] = Counter()  # (session, agent) -> times it came back
        self.present: set[tuple[str, str]] = set()
        self.seen: set[tuple[str, str]] = set()

    def step(self, view: MetricsView, control: Control) -> None:
        now = set(view.session_stages)  # (session, agent) pairs with live calls: an aggregate, O(sessions)
        for session, agent in now - self.present:
            if (session, agent) in self.seen:  # it left this agent and is back
                self.returns[(session, agent)] += 1
                control.set_priority(session, self.returns[(session, agent)], agent=agent)
        self.seen |= now
        self.present = now


class StickyFCFS(Policy):
    """Baseline (AutoGen/CrewAI-like): sessions are bound to instances by hash, first come first served.

    Load is never looked at: new sessions spread evenly (equal weights), and a
    session, once seen, stays on the instance its id hashes to.
    """

    name = "sticky-fcfs"

    def step(self, view: MetricsView, control: Control) -> None:
        for component in view.components():
            ids = sorted(i.id for i in view.instances.values() if i.component == component)
            control.route_weights(component, ids, [1.0] * len(ids))
        for session, component in view.session_stages:
            ids = sorted(i.id for i in view.instances.values() if i.component == component)
            control.route(session, component, ids[zlib.crc32(session.encode()) % len(ids)])


class RayLike(Policy):
    """Baseline (Ray-like): the shortest queue when a call is made; nothing moves afterwards.

    That is exactly what component-level controllers do with no decision
    installed, so this policy installs none: no weights, priorities or migrations.
    """

    name = "ray-like"

    def step(self, view: MetricsView, control: Control) -> None:
        return None
