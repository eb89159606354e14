"""Cache-aware placement against a hand-built view (unit; a fake control)."""

from __future__ import annotations

from collections.abc import Sequence

from pathlib import Path

from nalarc.policies import CacheAware, CachedPrefix, Control, FutureMetrics, InstanceMetrics, MetricsView, load_policy

CAPACITY = 4
#: mean latency of a call at every instance: one queued call ahead costs 1.0 / 4 = 0.25 s
LATENCY_MS = 1000.0


class Recorder(Control):
    """Records what the policy decides (a fake)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], str] = {}
        self.migrated: list[tuple[str, str, str]] = []

    def route(self, session: str, agent: str, instance: str) -> None:
        self.routes[(session, agent)] = instance

    def migrate(self, session_or_future: str, src: str, dst: str) -> bool:
        self.migrated.append((session_or_future, src, dst))
        return True

    def route_weights(self, agent: str, instances: Sequence[str], weights: Sequence[float]) -> None:
        raise AssertionError("cache-aware placement installs routes, not weights")

    def set_priority(self, session: str, priority: int, agent: str | None = None) -> None:
        raise AssertionError("cache-aware placement sets no priorities")

    def kill(self, instance: str) -> bool:
        raise AssertionError("cache-aware placement stops no instance")

    def provision(self, agent: str, node: str | None = None) -> str | None:
        raise AssertionError("cache-aware placement starts no instance")


def instance(name: str, queued: int, running: int) -> InstanceMetrics:
    return InstanceMetrics(name, "Analyst", "agent", "w0", True, False, queued, running, CAPACITY, 0,
                           frozenset(), LATENCY_MS, 0.0)


def view(loads: dict[str, tuple[int, int]], residency: dict[str, dict[str, CachedPrefix]],
         queued: Sequence[FutureMetrics] = ()) -> MetricsView:
    instances = {name: instance(name, q, r) for name, (q, r) in loads.items()}
    return MetricsView(0.0, instances, queued, residency=residency)


PREFIX = CachedPrefix(2300, 0.08)  # the analyst's portfolio prompt: 80 ms to re-warm


def test_cache_aware_routing_prefers_the_cached_instance_unless_it_is_overloaded() -> None:
    policy, control = CacheAware(), Recorder()
    # The cached instance is busier but has a free slot: no wait there, so the cache wins.
    policy.step(view({"A#0": (0, 3), "A#1": (0, 0)}, {"A#0": {"s1": PREFIX}}), control)
    assert control.routes == {("s1", "Analyst"): "A#0"}
    # Full with one call queued: the next call would wait 2 x 0.25 s, more than the 80 ms re-warm.
    policy.step(view({"A#0": (1, 4), "A#1": (0, 1)}, {"A#0": {"s1": PREFIX}}), control)
    assert control.routes == {("s1", "Analyst"): "A#1"}
    # Overloaded beyond 2x its slots: no cache credit even if the re-warm were dear.
    dear = CachedPrefix(2300, 100.0)
    policy.step(view({"A#0": (4, 4), "A#1": (3, 4)}, {"A#0": {"s1": dear}}), control)
    assert control.routes == {("s1", "Analyst"): "A#1"}


def test_a_short_wait_is_worth_a_dear_prefix() -> None:
    policy, control = CacheAware(), Recorder()
    # One call ahead at the cached instance (0.25 s) against a 0.5 s re-warm: stay.
    policy.step(view({"A#0": (0, 4), "A#1": (0, 0)}, {"A#0": {"s1": CachedPrefix(9000, 0.5)}}), control)
    assert control.routes == {("s1", "Analyst"): "A#0"}


def test_only_sessions_with_a_prefix_worth_keeping_are_routed() -> None:
    policy, control = CacheAware(), Recorder()
    residency = {"A#0": {"s1": PREFIX, "tiny": CachedPrefix(20, 0.0007)}, "A#1": {"s2": PREFIX}}
    policy.step(view({"A#0": (0, 0), "A#1": (0, 0)}, residency), control)
    assert control.routes == {("s1", "Analyst"): "A#0", ("s2", "Analyst"): "A#1"}


def queued_call(session: str, at: str) -> FutureMetrics:
    return FutureMetrics(f"{session}/f", session, "r", "Analyst", at, 2, 0, 1.0, "queued")


def test_migration_weighs_the_wait_saved_against_the_rewarm_paid() -> None:
    policy, control = CacheAware(), Recorder()
    loads = {"A#0": (2, 4), "A#1": (0, 0)}
    # First in line waits 0.25 s: moving pays 0.08 s of re-warm, worth it.  Second waits 0.5 s
    # but its prefix is dear (0.9 s): it stays.
    residency = {"A#0": {"s1": PREFIX, "s2": CachedPrefix(20000, 0.9)}}
    calls = [queued_call("s1", "A#0"), queued_call("s2", "A#0")]
    policy.step(view(loads, residency, calls), control)
    assert control.migrated == [("s1/f", "A#0", "A#1")]


def test_a_prefix_the_target_holds_too_costs_nothing_to_move() -> None:
    policy, control = CacheAware(), Recorder()
    dear = CachedPrefix(20000, 0.9)
    residency = {"A#0": {"s2": dear}, "A#1": {"s2": dear}}
    policy.step(view({"A#0": (2, 4), "A#1": (0, 0)}, residency, [queued_call("s2", "A#0")]), control)
    assert control.migrated == [("s2/f", "A#0", "A#1")]


def test_nalar_cache_composes_least_loaded_cache_aware_and_reassignment() -> None:
    assert load_policy("nalar-cache").name == "least-loaded+cache-aware+reassign"


# -- with real engines, on real worker processes --------------------------------------

LIVE_APP = '''
import os
import time
import nalarc
from nalarc.llm import chat

os.environ["NALARC_LLM_TIME_SCALE"] = "50"
PREFIX = "Client mandate: long-term growth, moderate risk, rebalance quarterly.  " * 110  # ~2,000 tokens

@nalarc.tool
def think(turn):
    time.sleep(0.05)
    return turn

@nalarc.agent(min_instances=2, max_instances=2)
class Chat:
    def reply(self, turn):
        result = chat([{"role": "system", "content": PREFIX}, {"role": "user", "content": f"turn {turn}"}],
                      max_tokens=10, full=True)
        return [result.usage.prompt_tokens, result.usage.cached_tokens]

@nalarc.workflow
def ask(turn):
    return Chat().reply(think(turn))
'''


def cached_share(tmp_path: Path, policy: str, sessions: int = 8, turns: int = 3) -> float:
    """Cached share of the prompt tokens of every follow-up turn (the first turn of a session never hits)."""
    import textwrap

    import trio

    from nalarc import load_app
    from nalarc.executor import Placement, open_service
    from nalarc.executor._statestore import StateStore

    (tmp_path / "cache_app.py").write_text(textwrap.dedent(LIVE_APP), encoding="utf-8")
    app = load_app(tmp_path / "cache_app.py", out_dir=tmp_path / f"build-{policy}")
    usages: list[list[int]] = []

    async def session(service: object, name: str) -> None:
        for turn in range(turns):
            usage = await service.run("ask", {"turn": turn}, name)  # type: ignore[attr-defined]
            if turn > 0:
                usages.append(usage)
            await trio.sleep(0.05)  # the user reads the answer (a policy round or more)

    async def main() -> None:
        placement = Placement(workers=2, policy=load_policy(policy), interval=0.01, elastic=False)
        async with open_service(app, StateStore(None), placement) as service:
            async with trio.open_nursery() as nursery:
                for n in range(sessions):
                    nursery.start_soon(session, service, f"s{n}")

    trio.run(main)
    return sum(c for _, c in usages) / sum(p for p, _ in usages)


def test_cache_aware_routing_keeps_more_of_the_prompt_cached_than_the_default_router(tmp_path: Path) -> None:
    default = cached_share(tmp_path, "nalar")
    aware = cached_share(tmp_path, "nalar-cache")
    assert aware > 0.9  # nearly every follow-up lands where its prefix is
    assert aware > default + 0.2, (default, aware)
