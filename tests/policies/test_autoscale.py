"""The autoscaler against a control that enforces instance bounds (unit; a fake control)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nalarc.policies import Autoscale, Control, FutureMetrics, InstanceMetrics, MetricsView, load_policy


class Bounded(Control):
    """A control with one component's instances, between ``low`` and ``high`` (a fake)."""

    def __init__(self, low: int, high: int, loads: list[tuple[int, int]], capacity: int = 4, kind: str = "tool") -> None:
        self.low, self.high, self.capacity, self.kind = low, high, capacity, kind
        #: instance id -> (queued, running)
        self.instances = {f"search#{k}": load for k, load in enumerate(loads)}
        self.migrated: list[tuple[str, str, str]] = []
        self.killed: list[str] = []

    def view(self, now: float) -> MetricsView:
        metrics = {
            i: InstanceMetrics(i, "search", self.kind, "w0", True, False, q, r, self.capacity, 0, frozenset(), 0.0, 0.0)
            for i, (q, r) in self.instances.items()
        }
        futures = [FutureMetrics(f"{i}/f{n}", "s", "r", "search", i, 1, 0, 1.0, "queued")
                   for i, (q, _) in self.instances.items() for n in range(q)]
        return MetricsView(now, metrics, futures)

    def provision(self, agent: str, node: str | None = None) -> str | None:
        if len(self.instances) >= self.high:
            return None
        new = f"search#{len(self.instances) + len(self.killed)}"
        self.instances[new] = (0, 0)
        return new

    def kill(self, instance: str) -> bool:
        if len(self.instances) <= self.low:
            return False
        del self.instances[instance]
        self.killed.append(instance)
        return True

    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        self.migrated.append((session_or_future, src, dst))
        q, r = self.instances[src]
        self.instances[src] = (q - 1, r)
        dq, dr = self.instances[dst]
        self.instances[dst] = (dq + 1, dr)
        return True

    def route(self, session: str, agent: str, instance: str) -> None:
        raise AssertionError("the autoscaler does not pin sessions")

    def route_weights(self, agent: str, instances: Sequence[str], weights: Sequence[float]) -> None:
        raise AssertionError("the autoscaler does not weight routes")

    def set_priority(self, session: str, priority: int, agent: str | None = None) -> None:
        raise AssertionError("the autoscaler sets no priorities")


def test_a_burst_scales_up_at_once_and_queued_calls_move_to_the_new_instances() -> None:
    # 1 instance of 4 slots, 4 running and 20 queued: 24 calls want 24 / 3.2 = 8 instances.
    control = Bounded(1, 8, [(20, 4)])
    Autoscale().step(control.view(0.0), control)
    assert len(control.instances) == 8
    # The queue is spread: no instance keeps more queued calls than the fair share (3).
    assert max(q for q, _ in control.instances.values()) <= 3
    assert sum(q for q, _ in control.instances.values()) == 20 and len(control.migrated) == 17


def test_scaling_up_stops_at_max_instances() -> None:
    control = Bounded(1, 3, [(40, 4)])
    Autoscale().step(control.view(0.0), control)
    assert len(control.instances) == 3


def test_scaling_down_waits_for_the_delay_and_stops_only_idle_instances() -> None:
    control = Bounded(1, 8, [(0, 1), (0, 0), (0, 0), (0, 2)])
    policy = Autoscale(downscale_delay=5.0, look_back=2.0)
    for now in (0.0, 1.0, 4.9):
        policy.step(control.view(now), control)
    assert len(control.instances) == 4  # 3 busy slots need 1 instance, but not for 5 s yet
    policy.step(control.view(5.0), control)
    assert control.killed == ["search#2"]  # one idle instance, never a busy one
    for now in (6.0, 9.9):
        policy.step(control.view(now), control)
    assert len(control.killed) == 1  # the next one after another full delay
    for now in (10.0, 15.0, 20.0, 25.0):
        policy.step(control.view(now), control)
    # Down to the two busy instances: an instance running calls is never stopped.
    assert sorted(control.instances) == ["search#0", "search#3"]


def test_a_peak_in_the_look_back_window_holds_capacity() -> None:
    control = Bounded(1, 8, [(0, 3), (0, 3)])
    policy = Autoscale(downscale_delay=1.0, look_back=3.0)
    policy.step(control.view(0.0), control)  # 6 busy slots: 2 instances at 3.2 each
    assert len(control.instances) == 2
    control.instances = {i: (0, 0) for i in control.instances}
    for now in (1.0, 2.0, 2.9):
        policy.step(control.view(now), control)
    assert control.killed == []  # the peak at 0.0 is still in the window
    for now in (3.5, 5.0):
        policy.step(control.view(now), control)
    assert len(control.instances) == 1


def test_agent_instances_are_never_stopped() -> None:
    # A session may be pinned to any of them (managed state, an attribute set through a handle).
    control = Bounded(1, 8, [(0, 0), (0, 0), (0, 0)], kind="agent")
    policy = Autoscale(downscale_delay=0.0)
    for now in range(10):
        policy.step(control.view(float(now)), control)
    assert control.killed == []


def test_never_below_min_instances() -> None:
    control = Bounded(2, 8, [(0, 0), (0, 0), (0, 0)])
    policy = Autoscale(downscale_delay=0.0)
    for now in range(10):
        policy.step(control.view(float(now)), control)
    assert len(control.instances) == 2


def test_selectable_by_name() -> None:
    policy: Any = load_policy("autoscale+least-loaded")
    assert [p.name for p in policy.policies] == ["autoscale", "least-loaded"]
