"""The paper's evaluation (§8), side by side in one run: nalarc against baselines on three workloads.

Run: ``python benchmarks/paper_eval.py [--quick] [--out eval.json] [--plots docs/images]``

Workloads (examples/): the financial analyst (sessions with follow-ups after
think time), the router (a chat/code mix that shifts in phases of 95%) and
software engineering (planner -> batchable developers -> tester, failed
tasks re-enter).  Every LLM call goes to a simulated GPU per agent instance
(``nalarc.llm``), time compressed ``--time-scale`` times.

Systems, each on the same app, the same instances and the same trace:

* ``nalarc``: the compiled app under nalarc's default policies (``nalar``:
  least-loaded weighted routing + head-of-line migration + resource
  reassignment).
* ``sticky-fcfs``: the compiled app under the AutoGen/CrewAI-like baseline: a
  session stays on the instance that served its first call, first come first
  served, fixed placement, no batching across requests.
* ``ray-like``: the compiled app, shortest queue when a call is made, nothing
  moves afterwards.
* ``nalarc-no-batching`` (software engineering): nalarc's policies without
  batching across requests, to tell the two apart.
* ``threads``: the app as plain Python, one thread per request (calls run in
  program order, as written), the same number of GPUs per model with a
  session always on the same one.

Figures: latency (mean, p50, p95, p99) per rate; for the router the highest
rate whose p99 stays under the SLO; for software engineering the makespan of
a burst of tasks and the load imbalance (max/mean queue length over the
instances of an agent, sampled every 50 ms).  Latencies are in real seconds
of the compressed run; multiply by ``--time-scale`` for simulated seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
from _common import report
from rich.console import Console

import nalarc
from nalarc import load_app
from nalarc.executor import Placement, open_service
from nalarc.executor._app import LoadedApp
from nalarc.serve import (
    Arrival,
    resolve_arrivals,
    run_load,
    workload_arrivals,
)
from nalarc.executor._statestore import StateStore
from nalarc.policies import load_policy

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = Console(stderr=True)


@dataclass
class Workload:
    name: str
    app: str
    #: instances per agent (the GPUs each system gets)
    instances: dict[str, int]
    rates: list[float]
    duration: float
    quick_rates: list[float] = field(default_factory=list)
    quick_duration: float = 0.0
    #: "latency": open-loop rates; "makespan": one burst of ``burst`` tasks
    kind: str = "latency"
    burst: int = 0
    #: makespan runs are short: repeat with seeds seed..seed+repeat-1 and keep the median
    repeat: int = 1
    systems: tuple[str, ...] = ("nalarc", "sticky-fcfs", "ray-like", "threads")
    #: systems run at some rates only (ablations), to keep the full run under 10 minutes
    only_at: dict[str, list[float]] = field(default_factory=dict)


WORKLOADS = {
    "financial": Workload(
        "financial", "examples/financial_analyst.py",
        {"StockAgent": 2, "NewsAgent": 2, "BondAgent": 2, "MarketResearch": 2, "Analyst": 2},
        rates=[6.0, 10.0, 14.0, 18.0], duration=8.0, quick_rates=[12.0], quick_duration=8.0,
        systems=("nalarc", "nalarc-cache", "nalarc+srtf", "sticky-fcfs", "ray-like", "threads"), only_at={"nalarc+srtf": [10.0]},
    ),
    "router": Workload(
        "router", "examples/router.py", {"ChatAgent": 2, "CodeAgent": 2},
        rates=[8.0, 12.0, 16.0, 20.0], duration=15.0,
        systems=("nalarc", "nalarc-cache", "sticky-fcfs", "ray-like", "threads"),
    ),
    "swe": Workload(
        "swe", "examples/software_engineering.py", {"Planner": 2, "Developer": 2, "Tester": 2},
        # 128 tasks: the paper's regime, where the makespan is set by throughput (SWE-bench
        # tasks queue for thousands of seconds), not by the longest task's own critical path
        # (a 3-attempt chain of about 3 s here; at 32 tasks it bounds every system).
        rates=[], duration=0.0, kind="makespan", burst=128, repeat=3,
        systems=("nalarc", "nalarc-cache", "nalarc+lpt", "nalarc-no-batching", "sticky-fcfs", "ray-like", "threads"),
    ),
}

#: calls one agent instance (one GPU) runs at once; also the simulated engine's batch size
AGENT_CONCURRENCY = 4

#: system -> (policy, batching across requests)
POLICIES = {
    "nalarc": ("nalar", True),
    "nalarc+lpt": ("nalar+lpt", True),
    "nalarc+srtf": ("nalar+srtf", True),
    "nalarc-cache": ("nalar-cache", True),
    "nalarc-no-batching": ("nalar", False),
    "sticky-fcfs": ("sticky-fcfs", False),
    "ray-like": ("ray-like", False),
}


# -- one run -----------------------------------------------------------------


def arrivals_for(work: Workload, app: LoadedApp, rate: float, duration: float, seed: int) -> list[Arrival]:
    if work.kind == "makespan":
        tasks = app.module.tasks(work.burst, seed)
        return resolve_arrivals(app, [Arrival(0.0, None, {"task": t}, f"job-{n}") for n, t in enumerate(tasks)])
    return resolve_arrivals(app, workload_arrivals(app, rate, duration, seed))


async def _sample_imbalance(backend: Any, samples: dict[str, list[float]]) -> None:
    """Load imbalance: max/mean of the calls at each instance of an agent (queued or running), every 50 ms."""
    while True:
        by_component: dict[str, list[int]] = {}
        for controller in list(backend.instances.values()):
            calls = controller.queue_length + len(controller.running_entries)
            by_component.setdefault(controller.spec.name, []).append(calls)
        for name, calls in by_component.items():
            mean = sum(calls) / len(calls)
            if len(calls) > 1 and mean > 0:
                samples.setdefault(name, []).append(max(calls) / mean)
        await trio.sleep(0.05)


async def _served(work: Workload, app: LoadedApp, system: str, arrivals: list[Arrival],
                  interval: float) -> dict[str, Any]:
    policy, batching = POLICIES[system]
    # The paper's setting: a fixed number of instances (GPUs) per agent, for every system alike;
    # growing them (Placement.elastic) is measured in w1_concurrency.py.
    placement = Placement(workers=2, instances=dict(work.instances), policy=load_policy(policy),
                          interval=interval, batching=batching, agent_concurrency=AGENT_CONCURRENCY,
                          elastic=False)
    store = StateStore(None)
    imbalance: dict[str, list[float]] = {}
    try:
        async with open_service(app, store, placement) as service, trio.open_nursery() as nursery:
            nursery.start_soon(_sample_imbalance, service.backend, imbalance)
            result = await run_load(service, arrivals)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    result["imbalance"] = {name: statistics.fmean(values) for name, values in sorted(imbalance.items()) if values}
    return result


class _PlainService:
    """The app as plain Python: each request on a thread of its own, calls in program order."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.limiter = trio.CapacityLimiter(100_000)

    async def run(self, workflow: str | None, inputs: dict[str, Any], session: str = "default") -> Any:
        assert workflow is not None
        fn = getattr(self.module, workflow)

        def call() -> Any:
            with nalarc.session(session):
                return fn(**inputs)

        return await trio.to_thread.run_sync(call, limiter=self.limiter)


def _import_plain(work: Workload) -> Any:
    path = ROOT / work.app
    spec = importlib.util.spec_from_file_location(f"plain_{work.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _plain(work: Workload, arrivals: list[Arrival]) -> dict[str, Any]:
    from nalarc.llm import _client

    _client._ENGINES.clear()  # fresh GPUs (empty KV caches) for every run
    module = _import_plain(work)
    result = await run_load(_PlainService(module), arrivals)
    result["imbalance"] = {}
    return result


def run_one(work: Workload, app: LoadedApp, system: str, rate: float, duration: float, seed: int,
            interval: float) -> dict[str, Any]:
    arrivals = arrivals_for(work, app, rate, duration, seed)
    started = time.perf_counter()
    if system == "threads":
        with _env(NALARC_LLM_REPLICAS=str(max(work.instances.values()))):
            result = trio.run(_plain, work, arrivals)
    else:
        result = trio.run(_served, work, app, system, arrivals, interval)
    summary = result["summary"]
    finished = [r["finished"] for r in result["requests"] if r]
    row = {
        "workload": work.name, "system": system, "rate": rate, "requests": summary["count"],
        "errors": summary["errors"], "mean": summary["mean"], "p50": summary["p50"], "p95": summary["p95"],
        "p99": summary["p99"], "makespan": max(finished) if finished else None,
        "imbalance": max(result["imbalance"].values(), default=None),
        "imbalance_by_agent": result["imbalance"], "wall": time.perf_counter() - started,
    }
    CONSOLE.print(f"  {work.name} {system} rate {rate:g}: p50 {_ms(row['p50'])}, p99 {_ms(row['p99'])}, "
                  f"makespan {_ms(row['makespan'])}, errors {row['errors']} ({row['wall']:.1f} s)", soft_wrap=True)
    return row


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


# -- the comparisons -----------------------------------------------------------


def _point(rows: list[dict[str, Any]], workload: str, system: str, rate: float) -> dict[str, Any] | None:
    return next((r for r in rows if r["workload"] == workload and r["system"] == system and r["rate"] == rate), None)


def reductions(rows: list[dict[str, Any]], workload: str, baseline: str, metric: str,
               system: str = "nalarc") -> dict[float, Any]:
    """Per rate: 1 - system / baseline for ``metric`` (0.4 = 40% lower).  Over seeds: the mean of the
    per-seed (paired: same trace) reductions and its 95% half-width, as ``[mean, ci]``."""
    out: dict[float, Any] = {}
    for row in rows:
        if row["workload"] != workload or row["system"] != system:
            continue
        base = _point(rows, workload, baseline, row["rate"])
        if base is None or not base[metric] or row[metric] is None:
            continue
        if "per_seed" in row and "per_seed" in base:
            pairs = zip(row["per_seed"][metric], base["per_seed"][metric])
            out[row["rate"]] = list(mean_ci([1 - a / b for a, b in pairs if a is not None and b]))
        else:
            out[row["rate"]] = 1 - row[metric] / base[metric]
    return out


def sustained(rows: list[dict[str, Any]], workload: str, system: str, slo: float) -> float | None:
    """Highest rate whose (mean over seeds) p99 is under ``slo`` seconds with no errors (every lower rate too)."""
    best = None
    for row in sorted((r for r in rows if r["workload"] == workload and r["system"] == system), key=lambda r: r["rate"]):
        if row["errors"] or row["p99"] is None or row["p99"] > slo:
            break
        best = row["rate"]
    return best


def _speedup(rows: list[dict[str, Any]], system: str, baseline: str) -> Any:
    """SWE makespan of ``baseline`` / ``system``: one number, or over seeds [mean, ci] of the paired ratios."""
    mine, base = _point(rows, "swe", system, 0.0), _point(rows, "swe", baseline, 0.0)
    if mine is None or base is None:
        return None
    if "per_seed" in mine and "per_seed" in base:
        return list(mean_ci([b / a for a, b in zip(mine["per_seed"]["makespan"], base["per_seed"]["makespan"])]))
    return base["makespan"] / mine["makespan"]


def comparisons(rows: list[dict[str, Any]], slo: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ours = [s for s in ("nalarc", "nalarc-cache") if any(r["system"] == s for r in rows)]
    if any(r["workload"] == "financial" for r in rows):
        for system in ours:
            suffix = "" if system == "nalarc" else "_cache"
            out[f"financial_vs_sticky{suffix}"] = {m: reductions(rows, "financial", "sticky-fcfs", m, system)
                                                   for m in ("p95", "p99")}
            out[f"financial_vs_ray_like{suffix}"] = {m: reductions(rows, "financial", "ray-like", m, system)
                                                     for m in ("p95", "p99")}
        out["financial_cache_vs_nalarc"] = {m: reductions(rows, "financial", "nalarc", m, "nalarc-cache")
                                            for m in ("mean", "p95", "p99")}
        out["srtf_effect"] = {m: _effect(rows, "financial", "nalarc+srtf", m) for m in ("mean", "p95")}
    if any(r["workload"] == "router" for r in rows):
        out["router_slo_s"] = slo
        out["router_sustained"] = {s: sustained(rows, "router", s, slo) for s in WORKLOADS["router"].systems}
        ray = out["router_sustained"].get("ray-like")
        out["router_sustained_vs_ray_like"] = {s: (rate / ray if rate and ray else None)
                                               for s, rate in out["router_sustained"].items()}
    swe = {r["system"]: r for r in rows if r["workload"] == "swe"}
    if "nalarc" in swe and "sticky-fcfs" in swe:
        out["swe_makespan"] = {s: r["makespan"] for s, r in swe.items()}
        out["swe_speedup_vs_static"] = _speedup(rows, "nalarc", "sticky-fcfs")
        out["swe_speedup_vs_static_cache"] = _speedup(rows, "nalarc-cache", "sticky-fcfs")
        out["swe_imbalance"] = {s: r["imbalance_by_agent"] for s, r in swe.items()}
        out["lpt_effect"] = {m: _effect(rows, "swe", "nalarc+lpt", m) for m in ("makespan", "p95")}
    return out


def _effect(rows: list[dict[str, Any]], workload: str, variant: str, metric: str) -> dict[float, float]:
    """Per rate: variant / nalarc - 1 for ``metric`` (-0.05 = 5% lower with the extra policy)."""
    base = {r["rate"]: r[metric] for r in rows if r["workload"] == workload and r["system"] == "nalarc"}
    return {r["rate"]: r[metric] / base[r["rate"]] - 1 for r in rows
            if r["workload"] == workload and r["system"] == variant and base.get(r["rate"]) and r[metric]}


# -- plots -----------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name in ("financial", "router"):
        mine = [r for r in rows if r["workload"] == name]
        if not mine:
            continue
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharex=True)
        for ax, metric in zip(axes, ("mean", "p50", "p95", "p99")):
            for system in WORKLOADS[name].systems:
                points = sorted((r["rate"], r[metric]) for r in mine if r["system"] == system and r[metric] is not None)
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=system)
            ax.set_title(f"{metric} latency")
            ax.set_xlabel("requests/s")
            ax.set_ylabel("seconds")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"{name}: latency against rate (like the paper's Figure 9)")
        fig.tight_layout()
        path = directory / f"eval_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    swe = [r for r in rows if r["workload"] == "swe"]
    if swe:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.bar([r["system"] for r in swe], [r["makespan"] for r in swe], color="tab:blue")
        ax.set_ylabel("makespan (s)")
        ax.set_title(f"software engineering: makespan of {WORKLOADS['swe'].burst} tasks")
        fig.tight_layout()
        path = directory / "eval_swe.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# -- main ------------------------------------------------------------------------


def evaluate(names: list[str], quick: bool, seed: int, interval: float, rates: list[float] | None,
             systems: list[str] | None, seeds: int = 1, burst: int | None = None) -> list[dict[str, Any]]:
    """One row per (workload, system, rate): a single run, or with ``seeds`` > 1 the mean over seeds
    seed..seed+seeds-1 (each seed its own trace, the same for every system) with 95% intervals."""
    rows = []
    for name in names:
        work = WORKLOADS[name]
        if quick:
            work = replace(work, rates=work.quick_rates, duration=work.quick_duration, systems=("nalarc", "sticky-fcfs"))
        if rates and work.kind == "latency":
            work = replace(work, rates=rates)
        if systems:
            work = replace(work, systems=tuple(s for s in work.systems if s in systems))
        if burst and work.kind == "makespan":
            work = replace(work, burst=burst)
        app = load_app(ROOT / work.app)
        CONSOLE.print(f"[bold]{name}[/bold]: {work.app}")
        for rate in (work.rates or [0.0]):
            for system in work.systems:
                if rate not in work.only_at.get(system, [rate]):
                    continue
                if seeds > 1:
                    rows.append(_over_seeds([run_one(work, app, system, rate, work.duration, seed + n, interval)
                                             for n in range(seeds)]))
                else:
                    rows.append(_median_run([run_one(work, app, system, rate, work.duration, seed + n, interval)
                                             for n in range(work.repeat)]))
    return rows


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median makespan (one run: itself); every run's makespan is kept."""
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r["makespan"])
    return {**ordered[len(ordered) // 2], "makespans": [r["makespan"] for r in runs]}


#: two-sided 95% Student t quantiles by sample size (n - 1 degrees of freedom)
_T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
METRICS = ("mean", "p50", "p95", "p99", "makespan")


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t; 0 for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, _T975.get(len(values), 1.96) * statistics.stdev(values) / len(values) ** 0.5


def _over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one point at several seeds: each metric's mean, its 95% half-width (``<metric>_ci``),
    and the per-seed values (``per_seed``, in seed order) for paired comparisons."""
    row: dict[str, Any] = {k: runs[0][k] for k in ("workload", "system", "rate")}
    row["requests"] = sum(r["requests"] for r in runs)
    row["errors"] = sum(r["errors"] for r in runs)
    row["seeds"] = len(runs)
    row["per_seed"] = {m: [r[m] for r in runs] for m in METRICS}
    for metric in METRICS:
        values = [r[metric] for r in runs if r[metric] is not None]
        row[metric], row[f"{metric}_ci"] = mean_ci(values) if values else (None, None)
    imbalances = [r["imbalance"] for r in runs if r["imbalance"] is not None]
    row["imbalance"] = statistics.fmean(imbalances) if imbalances else None
    row["imbalance_by_agent"] = runs[len(runs) // 2]["imbalance_by_agent"]
    row["wall"] = sum(r["wall"] for r in runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the financial workload at one rate, nalarc vs sticky (< 60 s)")
    parser.add_argument("--workloads", default=None, help="comma-separated subset of: " + ", ".join(WORKLOADS))
    parser.add_argument("--time-scale", type=float, default=10.0, help="simulated seconds per real second")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between global policy rounds")
    parser.add_argument("--slo", type=float, default=2.0, help="router p99 SLO in seconds (real, compressed)")
    parser.add_argument("--rates", default=None, help="comma-separated rates instead of each workload's own")
    parser.add_argument("--systems", default=None, help="comma-separated subset of the systems")
    parser.add_argument("--swe-burst", type=int, default=None,
                        help=f"tasks in the software-engineering burst (default {WORKLOADS['swe'].burst})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="run every point at seeds seed..seed+N-1 and report mean ± 95%% CI (N > 1)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--plots", type=Path, default=None, help="write PNG plots into this directory")
    args = parser.parse_args()
    names = args.workloads.split(",") if args.workloads else (["financial"] if args.quick else list(WORKLOADS))
    os.environ["NALARC_LLM_TIME_SCALE"] = str(args.time_scale)
    # Every GPU runs at most AGENT_CONCURRENCY sequences at once, served or plain.
    os.environ["NALARC_LLM_MAX_BATCH"] = str(AGENT_CONCURRENCY)
    out = args.out.resolve() if args.out else None
    plots = args.plots.resolve() if args.plots else None
    os.chdir(ROOT)
    started = time.perf_counter()
    rates = [float(r) for r in args.rates.split(",")] if args.rates else None
    systems = args.systems.split(",") if args.systems else None
    rows = evaluate(names, args.quick, args.seed, args.interval, rates, systems, args.seeds, args.swe_burst)
    extra = {"comparisons": comparisons(rows, args.slo), "time_scale": args.time_scale, "quick": args.quick,
             "seconds": time.perf_counter() - started}
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        extra["plots"] = [str(p) for p in plot(rows, plots)]
    columns = ["workload", "system", "rate", "requests", "errors", "mean", "p50", "p95", "p99", "makespan", "imbalance"]
    if args.seeds > 1:
        columns[columns.index("p99") + 1:columns.index("p99") + 1] = ["p99_ci"]
        columns.append("makespan_ci")
    report("paper evaluation (seconds)", rows, columns, out, extra)


if __name__ == "__main__":
    main()
