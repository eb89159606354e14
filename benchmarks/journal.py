"""What the request journal of ``nalarc run --serve`` costs per request.

Run: ``python benchmarks/journal.py [--requests 5000] [--calls 20000] [--dir DIR] [--out FILE.json]``

Each request does what the server does for it: the idempotency-key lookup, the
``accepted`` insert (committed before the server answers 202 / starts the run)
and the ``done`` update with the result (committed before the final answer);
timed per request with ``perf_counter_ns``.  Modes: WAL with
``synchronous=NORMAL`` (the default: a commit survives the server process
being killed), WAL with ``synchronous=FULL`` (fsync per commit: also survives
an OS crash / power loss), and in memory (``--state :memory:``).  The files are
in ``--dir`` (default ``.nalarc/bench-journal`` here: the disk the state store
would use).  The journal starts with ``--prefill`` finished rows, as a server
some hours in would have.

The second table is the checkpoint cost of call-level replay, per component
call, timed around what the runtime does for a journaled call
(``RequestJournal``: the key derivation, the ``started`` marker of a
non-idempotent call, the result's ``record`` before its future settles; on
resume, the lookup) against the real journal: a tool call with a 250-byte
string and a future as arguments, a 750-byte result.  Without a journal the
runtime pays one ``is None`` test per call.  The third table times whole
requests (a chain of ``--chain`` dependent in-process tool calls) without and
with the journal: the difference per call is what a request pays.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from _common import report

import nalarc
from nalarc._api import component_spec
from nalarc.runtime.lowlevel import CallRecord, Pending, RequestJournal
from nalarc.serve._journal import Journal, Sync

INPUTS = {"question": "What were the three largest risks in the 2025 annual report?" * 2, "top_k": 5,
          "filters": {"year": 2025, "sections": ["risk", "outlook"]}}
RESULT = {"answer": "x" * 600, "sources": [{"doc": f"d{i}", "score": 0.5 + i / 100} for i in range(5)]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(journal: Journal, requests: int, prefill: int) -> dict[str, Any]:
    for i in range(prefill):
        run_id = uuid.uuid4().hex
        journal.accept(run_id, "research", INPUTS, f"s{i % 100}", f"pre-{i}")
        journal.finish(run_id, "done", RESULT)
    accept_us, finish_us, total_us = [], [], []
    for i in range(requests):
        run_id, key = uuid.uuid4().hex, f"key-{i}"
        t0 = time.perf_counter_ns()
        assert journal.by_key(key) is None
        journal.accept(run_id, "research", INPUTS, f"s{i % 100}", key)
        t1 = time.perf_counter_ns()
        journal.finish(run_id, "done", RESULT)
        t2 = time.perf_counter_ns()
        accept_us.append((t1 - t0) / 1000)
        finish_us.append((t2 - t1) / 1000)
        total_us.append((t2 - t0) / 1000)
    return {  # microseconds
        "n": requests,
        "accept_p50": percentile(accept_us, 0.5), "accept_p99": percentile(accept_us, 0.99),
        "finish_p50": percentile(finish_us, 0.5), "finish_p99": percentile(finish_us, 0.99),
        "p50": percentile(total_us, 0.5), "p99": percentile(total_us, 0.99),
        "mean": statistics.fmean(total_us), "max": max(total_us),
    }


@nalarc.tool(idempotent=True)
def lookup_docs(query: str, previous: object) -> dict[str, object]:
    return RESULT


@nalarc.tool
def send_mail(query: str, previous: object) -> dict[str, object]:
    return RESULT


def measure_calls(journal: Journal, calls: int) -> list[dict[str, Any]]:
    """Per call, us: the checkpoint of an idempotent / non-idempotent call, and a replayed lookup."""
    rows = []
    run_id = uuid.uuid4().hex
    journal.accept(run_id, "research", INPUTS, "s", None)
    query = "q" * 250
    for name, fn in [("idempotent tool: key + record", lookup_docs),
                     ("non-idempotent tool: key + started + record", send_mail)]:
        spec = component_spec(fn)
        assert spec is not None
        view = RequestJournal(journal, run_id, resumed=False)
        previous = Pending(None, 0, "previous")
        previous.key = "0" * 32
        cost: list[float] = []
        for _ in range(calls):
            pending = Pending(None, 1, spec.name)
            record = CallRecord(spec, fn, None, (query, previous), {}, "s", run_id, pending)
            t0 = time.perf_counter_ns()
            assert not view.launch(record, pending)
            assert pending.key is not None
            view.dispatching(record, pending.key)
            view.succeeded(pending, RESULT)
            cost.append((time.perf_counter_ns() - t0) / 1000)
        rows.append(_summary(name, cost))
        resumed = RequestJournal(journal, run_id, resumed=True)
        replay: list[float] = []
        for _ in range(calls):
            pending = Pending(None, 1, spec.name)
            record = CallRecord(spec, fn, None, (query, previous), {}, "s", run_id, pending)
            t0 = time.perf_counter_ns()
            assert resumed.launch(record, pending)
            replay.append((time.perf_counter_ns() - t0) / 1000)
        rows.append(_summary(f"{name.split(':')[0]}: replayed on resume", replay))
    journal.finish(run_id, "done", RESULT)
    return rows


E2E_APP = '''
import nalarc

@nalarc.tool(idempotent=True)
def step(i, previous):
    return {"i": i, "text": "y" * 700}

@nalarc.tool
def send(i, previous):
    return {"i": i, "text": "y" * 700}

@nalarc.workflow
def chain(n, idempotent):
    value = None
    for i in range(n):
        value = step(i, value) if idempotent else send(i, value)
    return value["i"]
'''


def measure_end_to_end(directory: Path, calls: int, rounds: int) -> list[dict[str, Any]]:
    """Per call, us: a chain of dependent in-process tool calls, without and with the journal.

    The difference of the medians over ``rounds`` is the checkpoint cost as a request sees it.
    """
    import textwrap

    import trio

    from nalarc import load_app
    from nalarc.executor import open_service
    from nalarc.executor._statestore import StateStore

    app_file = directory / "e2e_app.py"
    app_file.write_text(textwrap.dedent(E2E_APP), encoding="utf-8")
    app = load_app(app_file, out_dir=directory / "e2e_build")
    journal = Journal(directory / "e2e.db")
    per_call: dict[tuple[bool, bool], list[float]] = {}

    async def main() -> None:
        async with open_service(app, StateStore(None), None) as service:
            for r in range(rounds + 1):  # the first round warms up
                for idempotent in (True, False):
                    for journaled in (False, True):
                        run_id = uuid.uuid4().hex
                        journal.accept(run_id, "chain", {}, "s", None)
                        t0 = time.perf_counter_ns()
                        await service.run("chain", {"n": calls, "idempotent": idempotent}, request_id=run_id,
                                          journal=journal if journaled else None)
                        elapsed = (time.perf_counter_ns() - t0) / 1000 / calls
                        journal.finish(run_id, "done", None)
                        if r:
                            per_call.setdefault((idempotent, journaled), []).append(elapsed)

    try:
        trio.run(main)
    finally:
        journal.close()
    rows = []
    for idempotent in (True, False):
        plain = statistics.median(per_call[idempotent, False])
        journaled = statistics.median(per_call[idempotent, True])
        rows.append({"tool": "idempotent" if idempotent else "non-idempotent", "calls": calls, "rounds": rounds,
                     "plain_us_per_call": plain, "journaled_us_per_call": journaled,
                     "checkpoint_us_per_call": journaled - plain})
    return rows


def _summary(name: str, us: list[float]) -> dict[str, Any]:
    return {"call": name, "n": len(us), "p50": percentile(us, 0.5), "p99": percentile(us, 0.99),
            "mean": statistics.fmean(us), "max": max(us)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--prefill", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--chain", type=int, default=500, help="dependent calls per end-to-end request")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path(".nalarc/bench-journal"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    modes: list[tuple[str, Path | None, Sync]] = [
        ("WAL NORMAL (default)", args.dir / "normal.db", "normal"),
        ("WAL FULL", args.dir / "full.db", "full"),
        ("memory", None, "normal"),
    ]
    rows = []
    for name, path, sync in modes:
        journal = Journal(path, sync=sync, max_runs=10 * (args.requests + args.prefill))
        try:
            rows.append({"mode": name, **measure(journal, args.requests, args.prefill)})
        finally:
            journal.close()
    call_rows = []
    for name, path, sync in modes:
        journal = Journal(path, sync=sync, max_runs=10 * (args.requests + args.prefill))
        try:
            call_rows += [{"mode": name, **row} for row in measure_calls(journal, args.calls)]
        finally:
            journal.close()
    e2e_rows = measure_end_to_end(args.dir, args.chain, args.rounds)
    shutil.rmtree(args.dir, ignore_errors=True)
    report("call-level replay: checkpoint cost per component call, us", call_rows,
           ["mode", "call", "n", "p50", "p99", "mean", "max"], None)
    report("call-level replay end to end (in-process tools, WAL NORMAL), us per call", e2e_rows,
           ["tool", "calls", "rounds", "plain_us_per_call", "journaled_us_per_call", "checkpoint_us_per_call"], None)
    report("journal cost per request, us (p50/p99/mean/max: key lookup + accept + finish)", rows,
           ["mode", "n", "accept_p50", "accept_p99", "finish_p50", "finish_p99", "p50", "p99", "mean", "max"],
           args.out,
           {"prefill": args.prefill, "input_bytes": len(str(INPUTS)), "result_bytes": len(str(RESULT))})


if __name__ == "__main__":
    main()
