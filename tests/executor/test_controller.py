"""Two-level control on real worker processes: policy loop, migration, supervision."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import nalarc
from nalarc import BrokenWorkerError, load_app
from nalarc._api import component_spec
from nalarc.executor import Placement, Service, open_service
from nalarc.runtime import lowlevel as _rt
from nalarc.executor import _instance as instance_module
from nalarc.executor._controller import GlobalController, NodeStore
from nalarc.executor._instance import InstanceController, QueuedCall
from nalarc.executor._process import ProcessBackend
from nalarc.executor._statestore import StateStore
from nalarc.policies import SRTF, Control, MetricsView, Policy, load_policy

APP = '''
import os
import time
import nalarc

@nalarc.tool
def dep(x, seconds=0.3):
    time.sleep(seconds)
    return x

@nalarc.tool(idempotent=True)
def safe(x):
    time.sleep(0.6)
    return x * 2

@nalarc.tool
def unsafe(x):
    time.sleep(0.6)
    return x * 3

@nalarc.agent(max_instances=3)
class Slow:
    def work(self, x, seconds=0.3):
        time.sleep(seconds)
        return [x, os.getpid()]

@nalarc.agent(stateful=True)
class Keeper:
    def __init__(self):
        self.items = []

    def add(self, x):
        time.sleep(0.2)
        self.items.append(x)
        return [len(self.items), os.getpid()]

@nalarc.workflow
def work(x, seconds=0.3):
    return Slow().work(x, seconds)

@nalarc.workflow
def work_after_dep(x):
    return Slow().work(dep(x))

@nalarc.workflow
def keep(x):
    return Keeper().add(x)

@nalarc.workflow
def safe_and_unsafe(x):
    return [safe(x), unsafe(x)]

@nalarc.workflow
def only_safe(x):
    return safe(x)
'''


def _app(tmp_path: Path) -> Any:
    (tmp_path / "ctl_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(tmp_path / "ctl_app.py", out_dir=tmp_path / "build")


def run_service(
    tmp_path: Path, body: Callable[[Service, ProcessBackend], Awaitable[Any]], **placement: Any
) -> Any:
    app = _app(tmp_path)

    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(**{"workers": 2, **placement})) as service:
            backend = service.backend
            assert isinstance(backend, ProcessBackend)
            return await body(service, backend)

    return trio.run(main)


class Idle(Policy):
    name = "idle"

    def step(self, view: MetricsView, control: Control) -> None:
        pass


def pid_of(backend: ProcessBackend, instance: str) -> int:
    return backend.instances[instance].worker.pid


def test_migrating_queued_calls_of_a_session(tmp_path: Path) -> None:
    """Value delivered: calls already queued at the old instance move to the new one."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        control.route("s1", "Slow", "Slow#0")
        results: dict[int, Any] = {}
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(_store, results, i, service.run("work", {"x": i, "seconds": 0.4}, "s1"))
            await trio.sleep(0.15)
            queued = backend.instances["Slow#0"].queue_length
            assert queued >= 1  # concurrency 1 per Slow instance: the rest wait
            assert control.migrate("s1", "Slow#0", "Slow#1")
            assert backend.instances["Slow#0"].queue_length == 0
        pids = [results[i][1] for i in range(4)]
        assert [results[i][0] for i in range(4)] == [0, 1, 2, 3]
        assert pids.count(pid_of(backend, "Slow#1")) >= queued
        # later calls of the session follow it
        again = await service.run("work", {"x": 9, "seconds": 0.01}, "s1")
        assert again[1] == pid_of(backend, "Slow#1")

    run_service(tmp_path, body, default_instances=2, agent_concurrency=1)


async def _store(results: dict[int, Any], key: int, awaitable: Awaitable[Any]) -> None:
    results[key] = await awaitable


def test_migration_before_the_dependency_is_ready(tmp_path: Path) -> None:
    """Value not yet sent: the call is routed when its input arrives, to the new place."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        control.route("s2", "Slow", "Slow#0")
        async with trio.open_nursery() as nursery:
            results: dict[int, Any] = {}
            nursery.start_soon(_store, results, 0, service.run("work_after_dep", {"x": 5}, "s2"))
            await trio.sleep(0.1)  # dep (0.3 s) is still running: nothing queued at Slow yet
            assert backend.instances["Slow#0"].load == 0
            control.migrate("s2", "Slow#0", "Slow#1")
        assert results[0] == [5, pid_of(backend, "Slow#1")]

    run_service(tmp_path, body, default_instances=2, agent_concurrency=1)


def test_the_view_counts_calls_made_and_waiting_for_their_inputs_as_pending(tmp_path: Path) -> None:
    """Lookahead: a call the workflow has made, whose input is still running, is in the view before it queues."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        async with trio.open_nursery() as nursery:
            results: dict[int, Any] = {}
            nursery.start_soon(_store, results, 0, service.run("work_after_dep", {"x": 5}, "s3"))
            await trio.sleep(0.1)  # dep (0.3 s) is still running
            waiting = control.collect().of("Slow")
            assert [(i.pending, i.load) for i in waiting if i.pending] == [(1, 0)]
        after = control.collect().of("Slow")
        assert results[0][0] == 5 and sum(i.pending for i in after) == 0

    run_service(tmp_path, body, default_instances=2, agent_concurrency=1)


def test_migration_racing_the_dependency_value(tmp_path: Path) -> None:
    """Value in flight: migrating in the same instant the input arrives runs the call once, at the new place."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        control.route("s3", "Slow", "Slow#0")
        dep_controller = next(c for c in backend.instances.values() if c.spec.name == "dep")
        results: dict[int, Any] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_store, results, 0, service.run("work_after_dep", {"x": 7}, "s3"))
            while dep_controller.completed == 0:  # the value is on its way back
                await trio.sleep(0)
            control.migrate("s3", "Slow#0", "Slow#1")
        assert results[0] == [7, pid_of(backend, "Slow#1")]
        assert backend.instances["Slow#0"].completed == 0
        assert backend.instances["Slow#1"].completed == 1

    run_service(tmp_path, body, default_instances=2, agent_concurrency=1)


def test_stateful_agents_never_migrate(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        first = await service.run("keep", {"x": 1}, "s4")
        home = next(i for i, c in backend.instances.items() if c.spec.name == "Keeper" and c.worker.pid == first[1])
        other = next(i for i, c in backend.instances.items() if c.spec.name == "Keeper" and i != home)
        assert control.migrate("s4", home, other) is False
        assert control.kill(home) is False
        second = await service.run("keep", {"x": 2}, "s4")
        assert second == [2, first[1]]  # same instance, its state intact

    run_service(tmp_path, body, instances={"Keeper": 2})


def test_policy_loop_runs_and_installs_decisions(tmp_path: Path) -> None:
    policy_file = tmp_path / "my_policy.py"
    policy_file.write_text(textwrap.dedent('''
        from nalarc.policies import Policy

        class PreferSecond(Policy):
            name = "prefer-second"
            steps = 0

            def step(self, view, control):
                PreferSecond.steps += 1
                slow = [i.id for i in view.of("Slow")]
                control.route_weights("Slow", slow, [0.0 if i.endswith("#0") else 1.0 for i in slow])
                control.set_priority("vip", 10)
    '''), encoding="utf-8")
    policy = load_policy(f"{policy_file}:PreferSecond+least-loaded")

    async def body(service: Service, backend: ProcessBackend) -> None:
        await trio.sleep(0.3)
        assert backend.controller is not None and backend.controller.timing.rounds >= 2
        # least-loaded runs after prefer-second and overrides its weights: composition order
        view = backend.controller.collect()
        assert {i.component for i in view.instances.values()} >= {"Slow", "Keeper", "dep"}
        assert backend.node_store.decisions.priority("vip", "Slow") == 10

    run_service(tmp_path, body, default_instances=2, policy=policy, interval=0.05)


def test_kill_and_provision_respect_bounds(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        assert control.kill("Slow#0") is True
        assert control.kill("Slow#1") is False  # min_instances = 1
        added = control.provision("Slow")
        assert added is not None and added in backend.instances
        assert control.provision("Slow") is not None
        assert control.provision("Slow") is None  # max_instances = 3
        result = await service.run("work", {"x": 3, "seconds": 0.01}, "s5")
        assert result[0] == 3

    run_service(tmp_path, body, default_instances=2)


def _children() -> set[int]:
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_sigkilled_worker_loses_no_request(tmp_path: Path) -> None:
    """Retry-safe calls are re-run elsewhere; the others fail with a typed error."""
    before = _children()

    async def body(service: Service, backend: ProcessBackend) -> dict[str, Any]:
        outcomes: dict[str, Any] = {}

        async def one(key: str, workflow: str, x: int) -> None:
            try:
                outcomes[key] = await service.run(workflow, {"x": x}, key)
            except Exception as exc:  # noqa: BLE001 - checked below
                outcomes[key] = exc

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(one, f"mixed{i}", "safe_and_unsafe", i)
                nursery.start_soon(one, f"safe{i}", "only_safe", i)
            await trio.sleep(0.3)  # everything is running on the workers now
            victim = backend.workers["w0"]
            os.kill(victim.pid, signal.SIGKILL)
        return outcomes

    outcomes = run_service(tmp_path, body, instances={"safe": 2, "unsafe": 2})
    assert len(outcomes) == 12  # no request lost
    for i in range(6):
        assert outcomes[f"safe{i}"] == i * 2  # idempotent: re-run, completed
    broken = [o for o in outcomes.values() if isinstance(o, BrokenWorkerError)]
    assert broken, "some unsafe calls were on the killed worker"
    for error in broken:
        assert error.signal == signal.SIGKILL and "unsafe" in error.component
        assert error.instance.startswith("unsafe#") and error.pid > 0
    assert all(o == [i * 2, i * 3] for i in range(6) if not isinstance(o := outcomes[f"mixed{i}"], Exception))
    trio.run(trio.sleep, 0.2)
    assert _children() <= before, "worker processes outlived the service"


def test_the_crash_rerun_limit_comes_from_the_placement(tmp_path: Path) -> None:
    """``Placement.rerun_after_crash=0``: even an idempotent call fails when its worker dies."""

    async def body(service: Service, backend: ProcessBackend) -> list[Any]:
        outcomes: list[Any] = []

        async def one(x: int) -> None:
            try:
                outcomes.append(await service.run("only_safe", {"x": x}, f"s{x}"))
            except Exception as exc:  # noqa: BLE001 - checked below
                outcomes.append(exc)

        async with trio.open_nursery() as nursery:
            for x in range(2):
                nursery.start_soon(one, x)
            await trio.sleep(0.3)  # both running, one per worker
            os.kill(backend.instances["safe#0"].worker.pid, signal.SIGKILL)
        return outcomes

    outcomes = run_service(tmp_path, body, instances={"safe": 2}, rerun_after_crash=0)
    assert len(outcomes) == 2
    broken = [o for o in outcomes if isinstance(o, BrokenWorkerError)]
    assert len(broken) == 1 and broken[0].instance == "safe#0"


def test_workers_outlive_idle_spawner_threads(tmp_path: Path) -> None:
    """Regression: workers must not die when the thread that spawned them retires (~10 s)."""

    async def body(service: Service, backend: ProcessBackend) -> Any:
        pids = {w.pid for w in backend.workers.values()}
        await trio.sleep(11)
        assert all(w.process.returncode is None for w in backend.workers.values())
        assert {w.pid for w in backend.workers.values()} == pids
        return await service.run("work", {"x": 1, "seconds": 0.01}, "idle")

    assert run_service(tmp_path, body, workers=1)[0] == 1


DRIVER = """
import sys, trio
from pathlib import Path
from nalarc.executor import Placement, load_build, open_service
from nalarc.executor._statestore import StateStore

async def main():
    app = load_build(Path(sys.argv[1]))
    async with open_service(app, StateStore(None), Placement(workers=2)) as service:
        print(" ".join(str(w.pid) for w in service.backend.workers.values()), flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    app = _app(tmp_path)
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(app.build_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None
    pids = [int(p) for p in driver.stdout.readline().split()]
    assert len(pids) == 2
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in pids), "orphaned workers"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# -- the controllers' bookkeeping, without processes ---------------------------------


@nalarc.agent(max_instances=2)
class Echo:
    def say(self, x: Any) -> Any:
        return x


class NoopHost:
    """An instance host that never sends anything: started calls stay running until released."""

    def __init__(self, node_store: NodeStore, nursery: trio.Nursery) -> None:
        self.id, self.alive, self.pid = "node0", True, 0
        self.node_store, self.store, self.tracer = node_store, StateStore(None), None
        self.call_observer = None
        self.max_batch, self.batching, self._nursery = 16, True, nursery

    @property
    def nursery(self) -> trio.Nursery:
        return self._nursery

    def send_run(self, controller: InstanceController[Any], entry: QueuedCall, state: Any) -> None:
        pass

    async def send_batch(self, controller: InstanceController[Any], batch: list[QueuedCall]) -> None:
        pass

    async def send_preempt(self, controller: InstanceController[Any], hook: str) -> None:
        pass


class TwoInstances:
    """Two Echo instances on a no-op host, with what the global controller reads."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.node_store = NodeStore()
        host = NoopHost(self.node_store, nursery)
        spec = component_spec(Echo)
        assert spec is not None
        self.spec = spec
        self.instances = {f"Echo#{i}": InstanceController(host, f"Echo#{i}", spec, host, 1) for i in range(2)}
        self.by_component = {spec.key: list(self.instances)}
        self.sticky: dict[tuple[str, str], str] = {}

    def call(self, session: str, stage: int, instance: str = "Echo#0") -> QueuedCall:
        record = _rt.CallRecord(self.spec, Echo, "say", (), {}, session, session, None)
        record.stage = stage
        entry = QueuedCall(record, priority=0)
        self.instances[instance].submit(entry)
        return entry

    def retire(self, controller: InstanceController[Any]) -> None:
        raise AssertionError("not used")

    def provision(self, name: str, node: str | None = None) -> str | None:
        return None


def run_two(body: Callable[[TwoInstances], None]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            body(TwoInstances(nursery))
            nursery.cancel_scope.cancel()

    trio.run(main)


OPS = st.lists(st.tuples(st.sampled_from(["call", "release", "take"]), st.sampled_from("abc"), st.integers(0, 4)),
               max_size=40)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_session_deltas_always_add_up_to_the_deepest_live_stage(ops: list[tuple[str, str, int]]) -> None:
    """Calls arrive, finish and migrate away in any order: the deltas keep a collector exact."""

    def body(cluster: TwoInstances) -> None:
        echo = cluster.instances["Echo#0"]
        live: list[QueuedCall] = []
        collected = dict(echo.drain_changes())  # the first drain: a full (empty) snapshot
        for op, session, stage in ops:
            if op == "call":
                live.append(cluster.call(session, stage))
            elif op == "release" and echo.running_entries:
                done = next(iter(echo.running_entries.values()))
                echo.release(done)
                live.remove(done)
            elif op == "take":
                for moved in echo.take_session(session):
                    live.remove(moved)
            for changed, deepest in echo.drain_changes():
                if deepest is None:
                    del collected[changed]
                else:
                    collected[changed] = deepest
            truth: dict[str, int] = {}
            for entry in live:
                truth[entry.call.session] = max(truth.get(entry.call.session, -1), entry.call.stage)
            assert collected == truth

    run_two(body)


def test_a_wide_fan_out_in_one_session_is_not_rescanned_per_finishing_call() -> None:
    """Regression: each call leaving at the deepest stage rescanned its session's live calls in
    Python: a fan-out of n calls cost O(n^2) (2,000 no-op calls started at once in one session
    ran at 4.4-5.2k calls/s through a worker process; 9-14k without the rescans)."""

    def body(cluster: TwoInstances) -> None:
        echo = cluster.instances["Echo#0"]
        calls = [cluster.call("wide", i % 3) for i in range(3000)]
        scans = 0

        def counting_max(*args: Any, **kwargs: Any) -> Any:
            nonlocal scans
            scans += 1
            return max(*args, **kwargs)

        with mock.patch.object(instance_module, "max", counting_max, create=True):
            for _ in calls:
                echo.release(next(iter(echo.running_entries.values())))
        assert not echo.running_entries and echo.queue_length == 0
        assert scans <= 3  # once per distinct stage that empties, not once per call

    run_two(body)


def test_component_controller_publishes_session_deltas() -> None:
    def body(cluster: TwoInstances) -> None:
        echo = cluster.instances["Echo#0"]
        first = cluster.call("a", 1)  # runs at once (limit 1)
        cluster.call("a", 3)
        cluster.call("b", 2)
        assert (echo.running, echo.queue_length, set(echo.waiting_sessions())) == (1, 2, {"a", "b"})
        assert sorted(echo.drain_changes()) == [("a", 3), ("b", 2)]  # the first drain is a full snapshot
        assert echo.drain_changes() == []
        echo.release(first)  # a's stage-1 call is done; b's call starts (FIFO at equal priority)
        assert echo.drain_changes() == []  # a's deepest stage is still 3
        assert echo.running_entries and next(iter(echo.running_entries.values())).call.session == "a"

    run_two(body)


def test_installed_priority_is_applied_before_the_next_pop() -> None:
    def body(cluster: TwoInstances) -> None:
        echo = cluster.instances["Echo#0"]
        running = cluster.call("x", 1)
        for session in ("a", "b", "c"):
            cluster.call(session, 1)
        echo.reprioritize("c", 5)  # recorded, not applied yet
        assert [f.priority for f in echo.oldest_queued(3, 0.0)] == [0, 0, 5]
        echo.release(running)
        assert [e.call.session for e in echo.running_entries.values()] == ["c"]
        moved = echo.take_session("b")
        assert [e.call.session for e in moved] == ["b"] and echo.queue_length == 1

    run_two(body)


def test_global_view_and_set_priority_touch_only_where_the_session_is() -> None:
    def body(cluster: TwoInstances) -> None:
        control = GlobalController(cluster, SRTF())
        cluster.call("a", 1, "Echo#0")
        cluster.call("a", 2, "Echo#0")
        cluster.call("a", 4, "Echo#1")
        cluster.call("b", 3, "Echo#1")
        control.step()
        assert dict(control.session_stages) == {("a", "Echo"): 4, ("b", "Echo"): 3}
        assert cluster.node_store.decisions.priority("a", "Echo") == 4
        queued_a = [f for f in cluster.instances["Echo#0"].future_metrics(0.0) if f.status == "queued"]
        assert [f.priority for f in queued_a] == [4]  # SRTF: the session's deepest stage
        # A call that arrives between rounds takes the installed priority; one set outside a step reaches it.
        late = cluster.call("c", 1, "Echo#0")
        control.set_priority("c", 7)
        assert [f.priority for f in cluster.instances["Echo#0"].future_metrics(0.0) if f.id == late.future_id] == [7]
        # Restating an installed priority is a lookup; a change reaches only the instances holding the session.
        told: list[tuple[str, str, int]] = []
        for controller in cluster.instances.values():
            controller.reprioritize = lambda s, p, i=controller.id: told.append((i, s, p))  # type: ignore[method-assign]
        control.set_priority("a", 4, "Echo")
        control.set_priority("b", 6, "Echo")
        assert told == [("Echo#1", "b", 6)]

    run_two(body)


def test_migrating_a_future_or_a_session_updates_the_view() -> None:
    def body(cluster: TwoInstances) -> None:
        control = GlobalController(cluster, SRTF())
        cluster.call("busy", 1, "Echo#0")
        waiting = cluster.call("s", 2, "Echo#0")
        cluster.call("s", 3, "Echo#0")
        view = control.collect()
        assert [f.id for f in view.queued("Echo#0", 1)] == [waiting.future_id]  # the oldest first
        assert control.migrate(waiting.future_id, "Echo#0", "Echo#1")
        assert control.migrate("s", "Echo#0", "Echo#1")
        view = control.collect()
        assert view.instances["Echo#0"].queue_length == 0 and view.instances["Echo#1"].load == 2
        assert dict(view.session_stages) == {("busy", "Echo"): 1, ("s", "Echo"): 3}
        assert cluster.node_store.decisions.routes[("s", "Echo")] == "Echo#1"

    run_two(body)


def test_a_migration_earlier_in_a_round_leaves_the_view_still_for_later_policies() -> None:
    """Compose(migrate, SRTF): SRTF iterates session_stages while its set_priority merges the migration.

    The migrated session, already visited, must not come round again (it did:
    "dictionary keys changed during iteration").
    """

    class MoveInRoundTwo(Policy):
        rounds = 0

        def step(self, view: MetricsView, control: Control) -> None:
            self.rounds += 1
            if self.rounds == 2:
                first = next(session for session, _ in view.session_stages if session != "busy")
                control.migrate(first, "Echo#0", "Echo#1")
            SRTF().step(view, control)

    def body(cluster: TwoInstances) -> None:
        control = GlobalController(cluster, MoveInRoundTwo())
        cluster.call("busy", 1, "Echo#0")
        cluster.call("a", 2, "Echo#0")
        cluster.call("b", 2, "Echo#0")
        control.step()
        order = [session for session, _ in control.session_stages]
        cluster.call(order[-1], 5, "Echo#0")  # the last session's priority changes in round two
        control.step()
        assert dict(control.session_stages) == {("busy", "Echo"): 1, (order[1], "Echo"): 2, (order[2], "Echo"): 5}
        assert cluster.instances["Echo#1"].load == 1
        assert cluster.node_store.decisions.priority(order[2], "Echo") == 5

    run_two(body)
