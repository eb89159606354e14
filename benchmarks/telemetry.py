"""What telemetry costs per component call: off, the OpenTelemetry API alone, the SDK.

Run: ``python benchmarks/telemetry.py [--calls 2000] [--rounds 3] [--repeats 3] [--workers 0 1] [--out report.json]``

Each mode runs in a process of its own (a process sets its tracer provider once):

* ``off``: no tracer provider configured (the default): nalarc makes no span;
* ``api``: the API's ``NoOpTracerProvider`` configured: nalarc makes every span
  through the API, which records nothing (the cost of the calls themselves);
* ``sdk``: the SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter`` (every span is built, ended and exported in line).

One round is one request of a workflow that fans out ``--calls`` no-op tool
calls; the figure is the request's time divided by its calls (µs per call,
median of the rounds, after one warm-up round).  The modes' processes are
interleaved ``--repeats`` times, so that a busy machine slows each mode alike.  With ``--workers 1`` the calls
go to a worker process (the span's ``traceparent`` goes with each call).
Because a whole call costs 100-300 µs and a shared machine moves that by tens
of µs, each mode also times nalarc's telemetry hooks alone (``hooks us``): what
a call's launch, start and settling add (read the current span; make, start
and end the call's span; its ``traceparent``), against the same loop without
them.  Also measured: ``/metrics``' per-call histogram observation
(``ServeMetrics.observe_call``), alone, in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import trio

from _common import report

APP = '''
import nalarc

@nalarc.tool
def noop(x):
    return x

@nalarc.workflow
def fan(n):
    return len([noop(i) for i in range(n)])
'''

MODES = ("off", "api", "sdk")


def _configure(mode: str) -> Any:
    """The tracer provider for ``mode``; the in-memory exporter for ``sdk``."""
    from opentelemetry import trace

    if mode == "api":
        trace.set_tracer_provider(trace.NoOpTracerProvider())
    elif mode == "sdk":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        return exporter
    return None


def _noop(x: Any) -> Any:
    return x


def _hook_cost(n: int) -> float:
    """Seconds nalarc's span hooks add to one call, inside a request (see the module docstring)."""
    import nalarc
    from nalarc import _telemetry
    from nalarc._api import component_spec
    from nalarc.runtime.lowlevel import CallRecord, Pending

    tool = nalarc.tool(_noop)
    spec = component_spec(tool)
    assert spec is not None

    def calls(hooks: bool) -> float:
        start = time.perf_counter()
        for i in range(n):
            parent = _telemetry.current_span.get() if hooks else None
            pending = Pending(None, i, "noop")
            record = CallRecord(spec, tool, None, (), {}, "s", "r", pending)
            if parent is not None:
                record.span = _telemetry.start_call_span(record, pending, parent)
                _telemetry.call_started(record.span, "noop#0", "w0", 0.0)
            if hooks:
                _telemetry.traceparent(record.span)
            pending.set_value(None)
        return time.perf_counter() - start

    with _telemetry.request_span("bench", "s", "r"):
        bare = min(calls(False) for _ in range(3))
        hooked = min(calls(True) for _ in range(3))
    return (hooked - bare) / n


def child(mode: str, app_file: Path, calls: int, rounds: int, workers: int) -> dict[str, Any]:
    from nalarc import _telemetry, load_app
    from nalarc.executor import Placement, open_service
    from nalarc.executor._statestore import StateStore

    exporter = _configure(mode)
    app = load_app(app_file, out_dir=app_file.parent / f"build-{mode}-{workers}")
    placement = Placement(workers=workers) if workers else None

    async def main() -> list[float]:
        store = StateStore(None)
        per_call = []
        try:
            async with open_service(app, store, placement) as service:
                for _ in range(rounds + 1):
                    start = time.perf_counter()
                    assert await service.run("fan", {"n": calls}) == calls
                    per_call.append((time.perf_counter() - start) / calls)
        finally:
            store.close()
        return per_call[1:]  # the first round warms up (threads, instances, imports)

    per_call = trio.run(main)
    spans = len(exporter.get_finished_spans()) if exporter is not None else 0
    hooks = _hook_cost(20_000) if workers == 0 else None
    return {"enabled": _telemetry.enabled(), "per_call": per_call, "spans": spans, "hooks": hooks}


def _observe_cost(n: int) -> float:
    """Seconds per ``ServeMetrics.observe_call`` (the hook every finished call reaches with /metrics on)."""
    from nalarc.serve._metrics import ServeMetrics

    server: Any = types.SimpleNamespace(service=types.SimpleNamespace(backend=types.SimpleNamespace()))
    metrics = ServeMetrics(server)
    observe = metrics.observe_call
    start = time.perf_counter()
    for _ in range(n):
        observe("noop", "tool", 0.0001, 0.0002)
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "APP", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, app_file, workers = args.child
        print(json.dumps(child(mode, Path(app_file), args.calls, args.rounds, int(workers))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app_file = Path(tmp) / "telemetry_app.py"
        app_file.write_text(textwrap.dedent(APP), encoding="utf-8")
        for workers in args.workers:
            results: dict[str, list[float]] = {mode: [] for mode in MODES}
            spans: dict[str, int] = {}
            hooks: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.repeats):
                for mode in MODES:
                    out = subprocess.run(
                        [sys.executable, __file__, "--calls", str(args.calls), "--rounds", str(args.rounds),
                         "--child", mode, str(app_file), str(workers)],
                        capture_output=True, text=True, check=True)
                    result = json.loads(out.stdout)
                    results[mode] += [s * 1e6 for s in result["per_call"]]
                    spans[mode] = result["spans"]
                    if result["hooks"] is not None:
                        hooks[mode].append(result["hooks"] * 1e6)
            baseline = statistics.median(results["off"])
            for mode in MODES:
                median = statistics.median(results[mode])
                rows.append({"path": "in-process" if workers == 0 else f"{workers} worker process",
                             "telemetry": mode, "us per call": median, "best round us": min(results[mode]),
                             "vs off us": median - baseline, "spans exported (one process)": spans[mode],
                             "hooks us": statistics.median(hooks[mode]) if hooks[mode] else None,
                             "round us": [round(m, 2) for m in results[mode]]})
    observe_us = _observe_cost(200_000) * 1e6
    report("telemetry overhead per component call", rows,
           ["path", "telemetry", "us per call", "best round us", "vs off us", "hooks us",
            "spans exported (one process)"], args.out,
           extra={"calls_per_round": args.calls, "rounds": args.rounds, "metrics_observe_call_us": observe_us})
    print(f"/metrics histogram observation per call: {observe_us:.2f} us", file=sys.stderr)


if __name__ == "__main__":
    main()
