"""An open-loop load generator for a :class:`~nalarc.executor.Service` (no HTTP).

It reports its progress to a callback (the CLI draws it with rich): this module
renders nothing.

Requests are fired at their arrival times whether or not earlier ones have
finished (open loop), so a slow service builds up concurrency instead of
slowing the arrivals down.  The exception is a session's follow-up with a
``think`` time: a user sends it ``think`` seconds after reading the previous
reply (closed loop within the session, open loop across sessions).  Arrivals
come from a trace (JSONL, one request a line: ``{"at": seconds, "workflow":
name, "input": {...}, "session": id, "think": seconds}``, all but ``at``
optional), from the app's ``@workload`` generator (:mod:`nalarc.workloads`),
or from a Poisson process with a seeded RNG.

Latency is measured from the moment a request is fired to its end.  The
summary percentiles are over successful requests; errors are counted by type.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import trio

from .._errors import NalarcError
from ..executor import LoadedApp, bind_inputs
from ..workloads import Request, Session, is_workload


@dataclass
class Arrival:
    """One request of a load: when (seconds from the start), what, for whom."""

    at: float
    workflow: str | None
    inputs: dict[str, Any]
    session: str = "default"
    #: A follow-up: sent this many seconds after the session's previous reply (``at`` is then a lower bound).
    think: float | None = None


class Runs(Protocol):
    """What a load runs against: a :class:`~nalarc.executor.Service`, or anything that runs requests alike."""

    async def run(self, workflow: str | None, inputs: dict[str, Any], session: str = "default") -> Any: ...


def read_trace(path: Path) -> list[Arrival]:
    """Parse a JSONL trace, sorted by arrival time; errors name the line."""
    arrivals: list[Arrival] = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise NalarcError(f"{where}: not valid JSON: {exc}") from None
            if not isinstance(item, dict):
                raise NalarcError(f"{where}: expected a JSON object")
            unknown = set(item) - {"at", "workflow", "input", "session", "think"}
            if unknown:
                raise NalarcError(f"{where}: unknown keys {sorted(unknown)}")
            at, workflow = item.get("at"), item.get("workflow")
            inputs, session = item.get("input", {}), item.get("session", "default")
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at < 0:
                raise NalarcError(f"{where}: \"at\" must be a number of seconds >= 0")
            if workflow is not None and not isinstance(workflow, str):
                raise NalarcError(f"{where}: \"workflow\" must be a string")
            if not isinstance(inputs, dict):
                raise NalarcError(f"{where}: \"input\" must be a JSON object")
            if not isinstance(session, str):
                raise NalarcError(f"{where}: \"session\" must be a string")
            think = item.get("think")
            if think is not None and (isinstance(think, bool) or not isinstance(think, (int, float))
                                      or not math.isfinite(think) or think < 0):
                raise NalarcError(f"{where}: \"think\" must be a number of seconds >= 0")
            arrivals.append(Arrival(float(at), workflow, inputs, session, None if think is None else float(think)))
    arrivals.sort(key=lambda a: a.at)
    return arrivals


def poisson_arrivals(rate: float, duration: float, workflow: str | None, inputs: dict[str, Any], *,
                     seed: int = 0, session: str = "default") -> list[Arrival]:
    """Poisson arrivals at ``rate`` requests/s over ``duration`` seconds.

    ``session`` may contain ``{i}``, replaced by the request's index (one
    session per request); otherwise every request shares it.
    """
    if rate <= 0 or duration <= 0:
        raise NalarcError("--rate and --duration must be positive")
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    at = rng.expovariate(rate)
    while at < duration:
        index = len(arrivals)
        arrivals.append(Arrival(at, workflow, dict(inputs), session.replace("{i}", str(index))))
        at += rng.expovariate(rate)
    return arrivals


def workload_arrivals(app: LoadedApp, rate: float, duration: float, seed: int = 0) -> list[Arrival]:
    """What the app's ``@workload`` generator yields for ``rate`` and ``duration``, as arrivals."""
    if rate <= 0 or duration <= 0:
        raise NalarcError("--rate and --duration must be positive")
    generators = [v for v in vars(app.module).values() if is_workload(v)]
    if len(generators) != 1:
        raise NalarcError(f"the app defines {len(generators)} @workload functions; --rate without --input needs one")
    arrivals: list[Arrival] = []
    for item in generators[0](rate, duration, seed):
        if isinstance(item, Request):
            arrivals.append(Arrival(item.at, item.workflow, dict(item.input), item.session))
        elif isinstance(item, Session):
            thinks = list(item.thinks) or [item.think] * (len(item.inputs) - 1)
            for index, inputs in enumerate(item.inputs):
                think = None if index == 0 else thinks[index - 1]
                arrivals.append(Arrival(item.at, item.workflow, dict(inputs), item.id, think))
        else:
            raise NalarcError(f"@workload yielded {type(item).__name__}, not a Request or a Session")
    arrivals.sort(key=lambda a: a.at)
    return arrivals


def has_workload(app: LoadedApp) -> bool:
    return any(is_workload(v) for v in vars(app.module).values())


def resolve_arrivals(app: LoadedApp, arrivals: list[Arrival]) -> list[Arrival]:
    """Name each arrival's workflow; fail before the run on an unknown one or bad arguments."""
    resolved = []
    for index, arrival in enumerate(arrivals):
        try:
            name, fn = app.workflow(arrival.workflow)
            bind_inputs(name, fn, arrival.inputs)
        except NalarcError as exc:
            raise NalarcError(f"request {index} (at {arrival.at:g} s): {exc}") from None
        resolved.append(Arrival(arrival.at, name, arrival.inputs, arrival.session, arrival.think))
    return resolved


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, ok, errors and latency statistics (seconds, ok requests) of some records."""
    latencies = [r["latency"] for r in records if r["outcome"] == "ok"]
    return {
        "count": len(records),
        "ok": len(latencies),
        "errors": len(records) - len(latencies),
        "mean": sum(latencies) / len(latencies) if latencies else None,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else None,
    }


class LoadProgress(NamedTuple):
    """Where a load run is, each time a request is sent or finishes."""

    total: int
    sent: int
    done: int
    in_flight: int
    errors: int


async def run_load(service: Runs, arrivals: list[Arrival], *,
                   on_progress: Callable[[LoadProgress], None] | None = None) -> dict[str, Any]:
    """Fire every arrival at its time (open loop); wait for all; return the report.

    The report: ``summary`` (see :func:`summarize`, plus ``duration`` seconds,
    ``throughput`` ok requests/s and ``max_concurrency``), ``by_workflow``,
    ``errors`` (count by exception type) and ``requests``: per request
    ``index``, ``workflow``, ``session``, ``at`` (scheduled), ``started`` and
    ``finished`` (seconds from the start), ``latency``, ``outcome`` (``"ok"``
    or the exception's type name) and ``message``.
    """
    records: list[dict[str, Any]] = [{} for _ in arrivals]
    concurrency = {"now": 0, "max": 0, "sent": 0}
    counts: Counter[str] = Counter()
    start = trio.current_time()

    def report_progress() -> None:
        if on_progress is not None:
            errors = sum(n for k, n in counts.items() if k != "ok")
            on_progress(LoadProgress(len(arrivals), concurrency["sent"], sum(counts.values()), concurrency["now"], errors))

    async def fire(index: int, arrival: Arrival) -> None:
        began = trio.current_time()
        concurrency["now"] += 1
        concurrency["max"] = max(concurrency["max"], concurrency["now"])
        concurrency["sent"] += 1
        report_progress()
        outcome, message = "ok", ""
        try:
            await service.run(arrival.workflow, arrival.inputs, arrival.session)
        except Exception as exc:  # noqa: BLE001 - recorded per request
            outcome, message = type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""
        finally:
            concurrency["now"] -= 1
        ended = trio.current_time()
        counts[outcome] += 1
        records[index] = {
            "index": index, "workflow": arrival.workflow, "session": arrival.session, "at": arrival.at,
            "started": began - start, "finished": ended - start, "latency": ended - began,
            "outcome": outcome, "message": message,
        }
        report_progress()

    async def converse(chain: list[tuple[int, Arrival]]) -> None:
        """One session's requests: open loop, except follow-ups that wait for the previous reply."""
        async with trio.open_nursery() as session_nursery:
            previous: trio.Event | None = None
            for index, arrival in chain:
                if arrival.think is not None and previous is not None:
                    await previous.wait()
                    await trio.sleep(arrival.think)
                await trio.sleep_until(start + arrival.at)
                previous = trio.Event()
                session_nursery.start_soon(fire_then_set, index, arrival, previous)

    async def fire_then_set(index: int, arrival: Arrival, finished: trio.Event) -> None:
        await fire(index, arrival)
        finished.set()

    chains: dict[str, list[tuple[int, Arrival]]] = {}
    for index, arrival in enumerate(arrivals):
        chains.setdefault(arrival.session, []).append((index, arrival))
    async with trio.open_nursery() as nursery:
        for chain in chains.values():
            nursery.start_soon(converse, chain)
    elapsed = trio.current_time() - start
    summary = summarize(records)
    summary.update(duration=elapsed, throughput=summary["ok"] / elapsed if elapsed > 0 else 0.0,
                   max_concurrency=concurrency["max"])
    names = sorted({str(r["workflow"]) for r in records})
    return {
        "summary": summary,
        "by_workflow": {n: summarize([r for r in records if str(r["workflow"]) == n]) for n in names},
        "errors": dict(sorted((k, v) for k, v in counts.items() if k != "ok")),
        "requests": records,
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report as JSON."""
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
