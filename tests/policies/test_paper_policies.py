"""The paper's policies against a recording control (unit), and HoL migration on real workers."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import pytest

from nalarc.policies import (
    LPT,
    SRTF,
    Control,
    FutureMetrics,
    HeadOfLineMigration,
    InstanceMetrics,
    MetricsView,
    RayLike,
    ResourceReassignment,
    SessionPriority,
    StickyFCFS,
    load_policy,
)


class Recorder(Control):
    """Records every decision (a fake, for unit tests only)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def route(self, session: str, agent: str, instance: str) -> None:
        self.calls.append(("route", session, agent, instance))

    def route_weights(self, agent: str, instances: Sequence[str], weights: Sequence[float]) -> None:
        self.calls.append(("weights", agent, list(instances), list(weights)))

    def set_priority(self, session: str, priority: int, agent: str | None = None) -> None:
        self.calls.append(("priority", session, priority, agent))

    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        self.calls.append(("migrate", session_or_future, src, dst))
        return True

    def kill(self, instance: str) -> bool:
        self.calls.append(("kill", instance))
        return True

    def provision(self, agent: str, node: str | None = None) -> str | None:
        self.calls.append(("provision", agent))
        return f"{agent}#new"


def inst(id: str, queue: int = 0, running: int = 0, waiting: frozenset[str] = frozenset(), stateful: bool = False,
         pending: int = 0) -> InstanceMetrics:
    return InstanceMetrics(id, id.split("#")[0], "agent", "w0", True, stateful, queue, running, 1, 0, waiting, 0.0, 0.0,
                           pending)


def fut(id: str, instance: str, *, session: str = "s", request: str = "r", stage: int = 1, age: float = 1.0,
        status: str = "queued") -> FutureMetrics:
    return FutureMetrics(id, session, request, instance.split("#")[0], instance, stage, 0, age, status)


def view(instances: list[InstanceMetrics], futures: list[FutureMetrics] = ()) -> MetricsView:  # type: ignore[assignment]
    return MetricsView(0.0, {i.id: i for i in instances}, tuple(futures))


def test_hol_migration_moves_the_oldest_queued_call_to_an_idle_instance() -> None:
    v = view([inst("A#0", queue=2, running=1), inst("A#1")],
             [fut("F1", "A#0", age=3.0), fut("F2", "A#0", age=1.0), fut("F0", "A#0", status="running")])
    control = Recorder()
    HeadOfLineMigration().step(v, control)
    assert control.calls == [("migrate", "F1", "A#0", "A#1")]


def test_hol_migration_leaves_stateful_agents_alone() -> None:
    control = Recorder()
    HeadOfLineMigration().step(view([inst("K#0", queue=3, running=1, stateful=True), inst("K#1")],
                                    [fut("F1", "K#0")]), control)
    assert control.calls == []


def test_reassignment_moves_an_instance_to_the_overloaded_agent() -> None:
    v = view([inst("Chat#0"), inst("Chat#1"), inst("Code#0", queue=6, running=1)])
    control = Recorder()
    ResourceReassignment().step(v, control)
    assert control.calls == [("provision", "Code"), ("kill", "Chat#1")]
    quiet = Recorder()
    ResourceReassignment().step(view([inst("Chat#0"), inst("Code#0", queue=1)]), quiet)
    assert quiet.calls == []


def test_reassignment_looks_ahead_an_idle_agent_with_calls_on_the_way_keeps_its_instances() -> None:
    # Auditor is idle now (and first in line to give), but calls made for it wait for the developers' results.
    auditor_expects = [inst("Auditor#0", pending=3), inst("Auditor#1"), inst("Planner#0"), inst("Planner#1"),
                      inst("Developer#0", queue=6, running=1)]
    control = Recorder()
    ResourceReassignment().step(view(auditor_expects), control)
    assert control.calls == [("provision", "Developer"), ("kill", "Planner#1")]
    nobody_free = Recorder()
    ResourceReassignment().step(view([inst("Auditor#0", pending=1), inst("Auditor#1"), inst("Developer#0", queue=6)]),
                                nobody_free)
    assert nobody_free.calls == []


def test_reassignment_moves_gpus_between_agents_only_and_keeps_their_number() -> None:
    tool = InstanceMetrics("lint#0", "lint", "tool", "w0", True, False, 0, 0, 16, 0, frozenset(), 0.0, 0.0)
    control = Recorder()
    ResourceReassignment().step(view([tool, inst("Code#0", queue=6, running=1)]), control)
    assert control.calls == []  # a tool's slot is not a GPU for an agent

    class AtMinimum(Recorder):
        def kill(self, instance: str) -> bool:
            self.calls.append(("kill", instance))
            return instance.endswith("#new")

    refused = AtMinimum()
    ResourceReassignment().step(view([inst("Chat#0"), inst("Code#0", queue=6, running=1)]), refused)
    assert refused.calls == [("provision", "Code"), ("kill", "Chat#0"), ("kill", "Code#new")]


def test_session_priority_is_figure_6() -> None:
    v = view([inst("A#0", queue=1, running=1, waiting=frozenset({"vip"})), inst("A#1")])
    control = Recorder()
    SessionPriority("vip", 10).step(v, control)
    assert control.calls == [("priority", "vip", 10, None), ("migrate", "vip", "A#0", "A#1")]


def test_srtf_puts_later_stages_first() -> None:
    v = view([inst("A#0", queue=2)], [fut("F1", "A#0", session="early", stage=1), fut("F2", "A#0", session="late", stage=3)])
    control = Recorder()
    SRTF().step(v, control)
    assert sorted(control.calls) == [("priority", "early", 1, "A"), ("priority", "late", 3, "A")]


def test_lpt_puts_reentering_jobs_first() -> None:
    policy, control = LPT(), Recorder()

    def at_planner(*sessions: str) -> MetricsView:
        return view([inst("Plan#0", queue=len(sessions))], [fut(f"F{s}", "Plan#0", session=s) for s in sessions])

    policy.step(at_planner("a", "b"), control)
    policy.step(at_planner("b"), control)  # a went on to the developers; b is still being planned
    assert control.calls == []  # nobody came back yet
    policy.step(at_planner("a", "b", "c"), control)  # a failed its tests and re-enters; c is new
    assert control.calls == [("priority", "a", 1, "Plan")]
    policy.step(at_planner("c"), control)
    policy.step(at_planner("a", "c"), control)  # a's third attempt
    assert control.calls[-1] == ("priority", "a", 2, "Plan")


def test_baselines() -> None:
    v = view([inst("A#0"), inst("A#1")], [fut("F1", "A#0", session="s1"), fut("F2", "A#1", session="s1")])
    sticky = Recorder()
    StickyFCFS().step(v, sticky)
    assert sticky.calls[0] == ("weights", "A", ["A#0", "A#1"], [1.0, 1.0])  # load-oblivious for new sessions
    routes = [c for c in sticky.calls if c[0] == "route"]
    assert len(routes) == 1 and routes[0][1:3] == ("s1", "A")  # one session, one instance
    again = Recorder()
    StickyFCFS().step(v, again)
    assert again.calls == sticky.calls  # a hash, not a load-dependent choice
    ray = Recorder()
    RayLike().step(v, ray)
    assert ray.calls == []


class Detail:
    """Per-future detail served on demand, as the executor's global controller serves it; records what was asked."""

    def __init__(self, futures: list[FutureMetrics]) -> None:
        self.futures, self.asked = futures, []  # type: list[FutureMetrics], list[str]

    def futures_at(self, instance: str, now: float) -> list[FutureMetrics]:
        self.asked.append(instance)
        return [f for f in self.futures if f.instance == instance]

    def oldest_queued(self, instance: str, n: int, now: float) -> list[FutureMetrics]:
        self.asked.append(instance)
        return sorted((f for f in self.futures if f.instance == instance), key=lambda f: -f.age)[:n]


def test_a_view_of_aggregates_reads_futures_only_when_asked() -> None:
    detail = Detail([fut("F1", "A#0", age=2.0), fut("F2", "A#0", age=5.0)])
    v = MetricsView(0.0, {i.id: i for i in [inst("A#0", queue=2, running=1), inst("A#1")]},
                    session_stages={("s", "A"): 3}, detail=detail)
    control = Recorder()
    SRTF().step(v, control)
    assert control.calls == [("priority", "s", 3, "A")] and detail.asked == []  # SRTF reads the aggregate only
    HeadOfLineMigration().step(v, control)
    assert control.calls[-1] == ("migrate", "F2", "A#0", "A#1") and detail.asked == ["A#0"]
    assert [f.id for f in v.futures] == ["F1", "F2"] and v.futures is v.futures  # built once, on first use


@pytest.mark.parametrize("policy", [SRTF, LPT])
def test_srtf_and_lpt_are_short(policy: type) -> None:
    """The paper's claim: each is about a dozen lines (here: at most 15)."""
    source = [line for line in inspect.getsource(policy).splitlines() if line.strip() and not line.strip().startswith(('"""', "#"))]
    docstring_lines = len((policy.__doc__ or "").splitlines())
    assert len(source) - docstring_lines <= 15


def test_names_and_composition() -> None:
    assert load_policy("srtf").name == "srtf"
    composed = load_policy("nalar")
    assert composed.name == "least-loaded+hol-migration+reassign"
