"""Control plane at scale: the global loop and the per-future decision on emulated nodes (the paper's §6.3).

Run: ``python benchmarks/controlplane.py [--sizes 10-17] [--nodes 32 64] [--rounds 7] [--repeat 1]
[--churn 0.01] [--memory 100000] [--out FILE.json] [--plot docs/images/controlplane.png]``

Emulation.  K nodes, each a :class:`~nalarc.executor._controller.NodeStore` and
two agent instances (one ``Planner``, one ``Writer``), each instance a real
:class:`~nalarc.executor._instance.InstanceController` (limit 4) whose host never
sends anything: a started call stays "running" until the benchmark releases
it.  Every node store shares one :class:`Decisions` (in nalarc all component
controllers live in the driver).  N live futures are real ``QueuedCall``
entries over N/4 sessions (4 live calls each, stage 1-4 and agent drawn at
random), placed by the two-level path below.  One
:class:`~nalarc.executor._controller.GlobalController` runs the paper's SRTF
policy (:class:`nalarc.policies.SRTF`) over all node stores.

(a) Global loop.  ``GlobalController.step()``, split into collection (merging
the instances' deltas and building every instance's metrics) and policy
(SRTF over the view, installing priorities).  Before each measured round,
``--churn`` of the live futures finish (``InstanceController.release``, the
executor's own completion path) and each is replaced by its session's next
call (one stage deeper, 4 wraps to 1), so a round sees what changed in one
interval.  ``apply`` is what the component controllers then spend enforcing
the round's priorities (in a real deployment, spread over the nodes).  The
*cold* round is the first one after all N futures arrived: every key is new.

(b) Per-future decision.
  two-level: what happens when a call arrives with decisions installed, as
      ``ControlledBackend.execute`` does it: the priority lookup, a ``QueuedCall``,
      ``Router.route`` (the executor's router, ``nalarc.executor._routing``, over
      the emulated cluster's instances: session route, weights, else least loaded), and
      ``InstanceController.submit`` (heap push, session index, preemption check).
  one-level: the global controller decides every future itself: the call is
      placed as above and the controller runs a full ``step()`` (collect the
      global view, run SRTF over it) before the next arrival.  Nothing queues
      at the controller here (the paper's one-level figures include that
      queueing), so this is its service time: a lower bound.
  Each is timed per future over many futures (a running call finishes, untimed,
  before each arrival, so the number of live futures stays N).

Memory.  A compiled app (``main(n)`` fans out ``n`` agent calls) runs requests
on a runtime whose backend is the emulated cluster, taking calls as
``ControlledBackend`` does (``start_call``: the router, then the instance's queue); no call
ever finishes, so every future stays pending with all the driver holds for it
(its ``Pending``, ``CallRecord``, ``QueuedCall``, any task waiting on it).
tracemalloc measures bytes per pending future and per in-flight request; the
``--memory`` run holds that many pending futures in a fresh process and
reports its RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

import nalarc  # noqa: E402
from nalarc._api import ComponentSpec, component_spec  # noqa: E402
from nalarc.runtime import lowlevel as _rt  # noqa: E402
from nalarc.executor._controller import Decisions, GlobalController, NodeStore  # noqa: E402
from nalarc.executor._instance import InstanceController, QueuedCall  # noqa: E402
from nalarc.executor._local import run_request  # noqa: E402
from nalarc.executor._routing import Router  # noqa: E402
from nalarc.executor._statestore import StateStore  # noqa: E402
from nalarc.policies import SRTF, Compose, LeastLoaded  # noqa: E402


@nalarc.agent
class Planner:
    def plan(self, x: Any) -> Any:
        return x


@nalarc.agent
class Writer:
    def write(self, x: Any) -> Any:
        return x


AGENTS: list[tuple[ComponentSpec, Any, str]] = [
    (component_spec(Planner), Planner, "plan"),  # type: ignore[list-item]
    (component_spec(Writer), Writer, "write"),  # type: ignore[list-item]
]
FUTURES_PER_SESSION = 4
STAGES = 4
LIMIT = 4


def make_policy() -> Compose:
    """The global policy: least-loaded routing weights (nalarc's default) and the paper's SRTF priorities."""
    return Compose(LeastLoaded(), SRTF())


class Node:
    """One emulated node: its node store, and the host its instances send through (nothing is sent)."""

    def __init__(self, index: int, decisions: Decisions, nursery: trio.Nursery) -> None:
        self.id, self.alive, self.pid = f"node{index}", True, 0
        self.node_store = NodeStore(decisions, seed=index)
        self.store, self.tracer, self.max_batch, self.batching = StateStore(None), None, 16, True
        self.call_observer = None
        self._nursery = nursery

    @property
    def nursery(self) -> trio.Nursery:
        return self._nursery

    def send_run(self, controller: InstanceController[Any], entry: QueuedCall, state: Any) -> None:
        pass

    async def send_batch(self, controller: InstanceController[Any], batch: list[QueuedCall]) -> None:
        pass

    async def send_preempt(self, controller: InstanceController[Any], hook: str) -> None:
        pass


class EmulatedCluster:
    """K nodes x the given agents, with what the global controller reads, routed by the executor's own router."""

    def __init__(self, nodes: int, nursery: trio.Nursery, agents: list[tuple[ComponentSpec, Any, str]] = AGENTS) -> None:
        decisions = Decisions()
        self.nodes = [Node(k, decisions, nursery) for k in range(nodes)]
        self.node_store = self.nodes[0].node_store  # decisions are shared: any node's store serves
        #: The executor's routing (``nalarc.executor._routing``), over the emulated instances.
        self.router: Router[Node] = Router(self.node_store)
        self.instances, self.by_component, self.sticky = self.router.instances, self.router.by_component, self.router.sticky
        for node in self.nodes:
            for spec, _, _ in agents:
                self.router.add(InstanceController(node, f"{spec.name}#{node.id}", spec, node, LIMIT))

    def start_call(self, call: _rt.CallRecord) -> bool:
        """How ``ControlledBackend.start_call`` takes a ready call (the emulated agents have no retries,
        timeouts or pending inputs): routed, then queued at its instance."""
        self.router.route(call).submit(QueuedCall(call, priority=0))
        return True

    async def execute(self, call: _rt.CallRecord) -> Any:
        """``ControlledBackend.execute`` without retries or timeouts: queued, then waited for."""
        entry = QueuedCall(call, priority=self.node_store.decisions.priority(call.session, call.spec.name))
        self.router.route(call).submit(entry)
        await entry.done.wait()
        return entry.payload

    def retire(self, controller: InstanceController[Any]) -> None:
        raise NotImplementedError("the emulation keeps its instances")

    def provision(self, name: str, node: str | None = None) -> str | None:
        return None

    def node_stores(self) -> list[NodeStore]:
        return [node.node_store for node in self.nodes]


def two_level(cluster: EmulatedCluster, call: _rt.CallRecord) -> None:
    """A call arrives; the component level places it under the installed decisions (ControlledBackend.execute's first lines)."""
    priority = cluster.node_store.decisions.priority(call.session, call.spec.name)
    entry = QueuedCall(call, priority=priority)
    cluster.router.route(call).submit(entry)


def one_level(cluster: EmulatedCluster, controller: GlobalController, call: _rt.CallRecord) -> None:
    """A call arrives; the central controller collects its global view and runs the policy to place it."""
    two_level(cluster, call)
    controller.step()


class Workload:
    """The live futures: N calls over N/4 sessions, and the churn between rounds."""

    def __init__(self, cluster: EmulatedCluster, size: int, seed: int = 0) -> None:
        self.cluster, self.size, self.rng = cluster, size, random.Random(seed)
        self.instances = list(cluster.instances.values())

    def call(self, session: str, stage: int) -> _rt.CallRecord:
        spec, target, method = self.rng.choice(AGENTS)
        record = _rt.CallRecord(spec, target, method, (), {}, session, session, None)
        record.stage = stage
        return record

    def populate(self) -> None:
        for index in range(self.size):
            session = f"s{index // FUTURES_PER_SESSION}"
            two_level(self.cluster, self.call(session, self.rng.randint(1, STAGES)))

    def finish_one(self) -> tuple[str, int]:
        """A running call completes (the executor's completion path); returns its session and stage."""
        while True:
            controller = self.rng.choice(self.instances)
            if controller.running_entries:
                break
        entry = next(iter(controller.running_entries.values()))
        entry.ok = True
        entry.done.set()
        controller.release(entry)
        return entry.call.session, entry.call.stage

    def next_call(self) -> _rt.CallRecord:
        """One call finishes; its session's next call (one stage deeper) is returned, not yet placed."""
        session, stage = self.finish_one()
        return self.call(session, stage % STAGES + 1)

    def churn(self, count: int) -> None:
        for _ in range(count):
            two_level(self.cluster, self.next_call())


def _ms(seconds: float) -> float:
    return seconds * 1000


def _apply_all(cluster: EmulatedCluster) -> float:
    """The component controllers enforce the installed priorities now (normally: before their next pop)."""
    started = time.perf_counter()
    for controller in cluster.instances.values():
        controller.apply_priorities()
    return time.perf_counter() - started


def measure_loop(cluster: EmulatedCluster, controller: GlobalController, workload: Workload,
                 rounds: int, churn: float) -> dict[str, float]:
    controller.step()
    out = {"cold_collect_ms": _ms(controller.timing.collect), "cold_policy_ms": _ms(controller.timing.policy),
           "cold_apply_ms": _ms(_apply_all(cluster))}
    collect, policy, apply, changes = [], [], [], []
    for _ in range(rounds):
        workload.churn(max(1, int(churn * workload.size)))
        controller.step()
        collect.append(controller.timing.collect)
        policy.append(controller.timing.policy)
        changes.append(controller.timing.changes)
        apply.append(_apply_all(cluster))
    out |= {"collect_ms": _ms(statistics.median(collect)), "policy_ms": _ms(statistics.median(policy)),
            "apply_ms": _ms(statistics.median(apply)), "changes": statistics.median(changes)}
    out["loop_ms"] = out["collect_ms"] + out["policy_ms"]
    return out


def _percentiles(prefix: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {f"{prefix}_us": statistics.fmean(samples) * 1e6, f"{prefix}_p50_us": ordered[len(ordered) // 2] * 1e6,
            f"{prefix}_p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6}


def time_decisions(workload: Workload, decide: Callable[[_rt.CallRecord], None], count: int,
                   budget: float) -> list[float]:
    """Per-future decision times: a call finishes (untimed), its successor arrives (timed)."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < count and (len(samples) < 5 or time.perf_counter() < deadline):
        call = workload.next_call()
        started = time.perf_counter()
        decide(call)
        samples.append(time.perf_counter() - started)
    return samples


async def measure_point(size: int, nodes: int, rounds: int, churn: float, samples: int) -> dict[str, Any]:
    """One (futures, nodes) point.  The cyclic GC runs while the futures arrive (and is measured); it is
    paused while timing the loop and the decisions, as timeit does, and one full collection is timed apart."""
    async with trio.open_nursery() as nursery:
        cluster = EmulatedCluster(nodes, nursery)
        controller = GlobalController(cluster, make_policy(), node_stores=cluster.node_stores())
        workload = Workload(cluster, size)
        gc.collect()
        started = time.perf_counter()
        with gc_time() as in_gc:
            workload.populate()
        row: dict[str, Any] = {"nodes": nodes, "futures": size, "instances": len(cluster.instances),
                               "populate_s": time.perf_counter() - started, "gc_ramp_us": in_gc[0] / size * 1e6}
        gc.disable()
        try:
            row["gc_full_ms"] = _ms(_full_gc())
            row |= measure_loop(cluster, controller, workload, rounds, churn)
            row["keys"] = len(controller.session_stages)
            row |= measure_decisions(cluster, controller, workload, samples)
        finally:
            gc.enable()
        nursery.cancel_scope.cancel()
    return row


@contextlib.contextmanager
def gc_time() -> Iterator[list[float]]:
    """Seconds spent in the cyclic GC inside the block (in the yielded list's first item)."""
    spent = [0.0, 0.0]

    def track(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(track)
    try:
        yield spent
    finally:
        gc.callbacks.remove(track)


def _full_gc() -> float:
    gc.collect()  # the first one after the ramp also promotes the young objects
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def measure_decisions(cluster: EmulatedCluster, controller: GlobalController, workload: Workload,
                      samples: int) -> dict[str, Any]:
    """Two-level under the installed decisions, one-level, then two-level with no routing installed."""
    row = _percentiles("two_level", time_decisions(workload, lambda c: two_level(cluster, c), samples, 2.0))
    one = time_decisions(workload, lambda c: one_level(cluster, controller, c), samples, 1.5)
    row |= _percentiles("one_level", one) | {"one_level_samples": len(one)}
    cluster.node_store.decisions.weights.clear()  # routing falls back to Router.route's least-loaded scan
    scan = time_decisions(workload, lambda c: two_level(cluster, c), samples, 2.0)
    return row | {"two_level_scan_us": statistics.fmean(scan) * 1e6}


# -- memory ---------------------------------------------------------------------

APP = '''
import nalarc

@nalarc.agent
class Planner:
    def plan(self, x):
        return x

@nalarc.workflow
def main(n, tag):
    return [Planner().plan(f"{tag}-{i}") for i in range(n)]
'''


def _load_app(tmp: Path) -> tuple[Any, list[tuple[ComponentSpec, Any, str]]]:
    (tmp / "memapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = nalarc.load_app(tmp / "memapp.py", out_dir=tmp / "build")
    planner = app.module.Planner
    return app.workflow("main")[1], [(component_spec(planner), planner, "plan")]


async def _hold_requests(fn: Any, agents: list[tuple[ComponentSpec, Any, str]], requests: int, calls: int,
                         nodes: int, measure: Callable[[], int]) -> tuple[int, int]:
    """Start ``requests`` requests of ``calls`` calls each, none of which finishes; memory before and after."""
    async with trio.open_nursery() as nursery:
        cluster = EmulatedCluster(nodes, nursery, agents)
        runtime = _rt.Runtime(cluster)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        before = measure()
        for index in range(requests):
            nursery.start_soon(run_request, fn, {"n": calls, "tag": f"r{index}"}, runtime, f"s{index}")
        await trio.testing.wait_all_tasks_blocked()
        pending = sum(c.load for c in cluster.instances.values())
        assert pending == requests * calls, f"{pending} pending, expected {requests * calls}"
        gc.collect()
        after = measure()
        nursery.cancel_scope.cancel()
    return before, after


async def _controller_record(size: int, nodes: int) -> float:
    """Bytes the component-level controllers hold per queued future (QueuedCall, its event, heap item, indexes)."""
    async with trio.open_nursery() as nursery:
        cluster = EmulatedCluster(nodes, nursery)
        workload = Workload(cluster, size)
        calls = [workload.call(f"s{i // FUTURES_PER_SESSION}", 1 + i % STAGES) for i in range(size)]
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for call in calls:
            two_level(cluster, call)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        nursery.cancel_scope.cancel()
    return held / size


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def hold(futures: int, nodes: int) -> dict[str, float]:
    """In this (fresh) process: hold ``futures`` pending futures (4 per request); RSS before, holding, and the
    peak up to that moment (not the teardown, where every cancelled task allocates its exception)."""
    peaks: list[int] = []

    def rss() -> int:
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return _rss_now()

    with tempfile.TemporaryDirectory() as tmp:
        fn, agents = _load_app(Path(tmp))
        before, after = trio.run(_hold_requests, fn, agents, futures // 4, 4, nodes, rss)
    return {"held_futures": futures, "held_requests": futures // 4, "rss_before_mib": before / 2**20,
            "rss_holding_mib": after / 2**20, "peak_rss_mib": peaks[-1] / 2**20}


def measure_memory(futures: int, nodes: int, requests: int = 1000) -> dict[str, Any]:
    """Bytes per pending future and per in-flight request (tracemalloc), and RSS holding ``futures`` (a subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        fn, agents = _load_app(Path(tmp))
        tracemalloc.start()
        try:
            one = trio.run(_hold_requests, fn, agents, requests, 1, nodes, _traced)
            eight = trio.run(_hold_requests, fn, agents, requests, 8, nodes, _traced)
            record = trio.run(_controller_record, 8 * requests, nodes)
        finally:
            tracemalloc.stop()
    per_future = ((eight[1] - eight[0]) - (one[1] - one[0])) / (requests * 7)
    out: dict[str, Any] = {"bytes_per_pending_future": round(per_future),
                           "bytes_per_request": round((one[1] - one[0]) / requests - per_future),
                           "controller_bytes_per_future": round(record)}
    if futures:
        command = [sys.executable, __file__, "--hold", str(futures), "--nodes", str(nodes)]
        out |= json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return out


# -- report -----------------------------------------------------------------------

#: Printed in the table (the JSON has every figure).
COLUMNS = ["nodes", "futures", "changes", "collect_ms", "policy_ms", "loop_ms", "two_level_us", "one_level_us"]

#: The paper's Table 4 (ms per future, SRTF) and Figure 10's loop at 2^17 futures on 64 nodes, for the plot.
PAPER_ONE_LEVEL = [1.2, 2.3, 2.8, 3.4, 3.9, 19.4, 32.3, 72.3]
PAPER_TWO_LEVEL = [0.1, 0.1, 0.2, 0.4, 0.4, 0.3, 0.4, 0.4]
PAPER_LOOP_MS = 464


def _sizes(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return [2**e for e in range(int(low), int(high or low) + 1)]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Figure 10's stacked bars (collection, policy) per size and node count; Table 4 beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["futures"] for r in rows})
    nodes = sorted({r["nodes"] for r in rows})
    fig, (loop_ax, decide_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(nodes)
    for k, count in enumerate(nodes):
        mine = {r["futures"]: r for r in rows if r["nodes"] == count}
        xs = [i + (k - (len(nodes) - 1) / 2) * width for i in range(len(sizes))]
        collect = [mine[s]["collect_ms"] for s in sizes]
        policy = [mine[s]["policy_ms"] for s in sizes]
        loop_ax.bar(xs, collect, width, label=f"state collection, {count} nodes", color=f"C{2 * k}")
        loop_ax.bar(xs, policy, width, bottom=collect, label=f"policy, {count} nodes", color=f"C{2 * k + 1}")
        decide_ax.plot(sizes, [mine[s]["one_level_us"] / 1000 for s in sizes], "o-", label=f"one-level, {count} nodes")
        decide_ax.plot(sizes, [mine[s]["two_level_us"] / 1000 for s in sizes], "s--", label=f"two-level, {count} nodes")
    paper = [2**e for e in range(10, 18)]
    decide_ax.plot(paper, PAPER_ONE_LEVEL, ":", color="gray", label="paper, one-level (Table 4)")
    decide_ax.plot(paper, PAPER_TWO_LEVEL, "-.", color="gray", label="paper, two-level (Table 4)")
    loop_ax.set_xticks(range(len(sizes)), [f"2^{s.bit_length() - 1}" for s in sizes])
    loop_ax.set(xlabel="live futures", ylabel="global loop latency (ms)",
                title=f"Global control loop, steady rounds (paper: {PAPER_LOOP_MS} ms at 2^17, 64 nodes)")
    loop_ax.legend(fontsize=8)
    decide_ax.set(yscale="log", xlabel="live futures", ylabel="per-future decision (ms)",
                  title="One-level vs two-level control (SRTF)")
    decide_ax.set_xscale("log", base=2)
    decide_ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(sizes: list[int], nodes: list[int], rounds: int, churn: float, samples: int,
        repeat: int = 1) -> Iterator[dict[str, Any]]:
    """Every (nodes, futures) point, each the median of ``repeat`` fresh emulations (figure by figure)."""
    for count in nodes:
        for size in sizes:
            runs = []
            for _ in range(repeat):
                runs.append(trio.run(measure_point, size, count, rounds, churn, samples))
                gc.collect()
            yield _median_row(runs)


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key, value in row.items():
        if isinstance(value, (int, float)) and key not in ("nodes", "futures", "instances"):
            row[key] = statistics.median(r[key] for r in runs)
    return row | {"repeats": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10-17", help="log2 of live futures, e.g. 10-17 or 12")
    parser.add_argument("--nodes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=7, help="measured loop rounds per point (median)")
    parser.add_argument("--repeat", type=int, default=1, help="fresh emulations per point (median of each figure)")
    parser.add_argument("--churn", type=float, default=0.01, help="share of live futures replaced between rounds")
    parser.add_argument("--samples", type=int, default=2000, help="arrivals timed per point and level (at most)")
    parser.add_argument("--memory", type=int, default=100_000,
                        help="pending futures held for the RSS figure (0: bytes per future only, -1: no memory figures)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--hold", type=int, help=argparse.SUPPRESS)  # the memory run's subprocess
    args = parser.parse_args()
    if args.hold:
        print(json.dumps(hold(args.hold, max(args.nodes))))
        return
    rows = list(run(_sizes(args.sizes), args.nodes, args.rounds, args.churn, args.samples, args.repeat))
    extra: dict[str, Any] = {"churn": args.churn, "rounds": args.rounds, "repeat": args.repeat,
                             "policy": make_policy().name}
    if args.memory >= 0:
        extra["memory"] = measure_memory(args.memory, max(args.nodes))
    report("control plane at scale", rows, COLUMNS, args.out, extra)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
