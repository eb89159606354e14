"""``nalarc build`` / ``nalarc run``: parse arguments, call the library, render."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import _telemetry
from .._errors import CompileError, NalarcError
from .._version import __version__

app = typer.Typer(
    name="nalarc",
    help="Compile plain-Python agent workflows into futures and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"nalarc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """nalarc: serve plain-Python LLM agent workflows."""


def _fail(error: BaseException) -> typer.Exit:
    # Plain text, never wrapped: editors and CI parse `path:line:col: error:` lines.
    message = error.render() if isinstance(error, CompileError) else f"error: {error}"
    print(message, file=sys.stderr)
    return typer.Exit(1)


@app.command()
def build(
    app_file: Annotated[Path, typer.Argument(metavar="APP.py|PKG/", help="The app to compile, or a package directory to compile in place.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Build directory (default .nalarc/build/<app or package>).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Every fallback to sequential semantics is an error.")] = False,
    ir: Annotated[bool, typer.Option("--ir", help="Also print the IR as text.")] = False,
) -> None:
    """Compile APP.py (and the local modules it imports) into a build directory.

    Given a package directory PKG/ (one with __init__.py), compile every module
    of the package in place: imports resolve against the directory containing
    the top-level package, and the build directory gets the same tree.
    """
    from .._build import build as do_build
    from ..ir.pprint import format_program

    try:
        result = do_build(app_file, out, strict=strict)
    except (NalarcError, OSError) as exc:
        raise _fail(exc) from None
    for d in result.warnings:
        print(f"{d.path}:{d.span[0]}:{d.span[1] + 1}: warning: {d.message}", file=sys.stderr)
    if ir:
        print(format_program(result.program), end="")
    err.print(_summary(result))


def _summary(result: Any) -> Table:
    program = result.program
    functions = program.functions().values()
    table = Table(title=f"nalarc build {result.app_module} -> {result.out_dir}")
    table.add_column("what")
    table.add_column("count", justify="right")
    comps = program.components().values()
    rows = [
        ("tools", sum(1 for c in comps if c.kind == "tool")),
        ("agents", sum(1 for c in comps if c.kind == "agent")),
        ("workflows", len(result.workflows)),
        ("component call sites", sum(len(f.futures) for f in functions)),
        ("async functions", sum(1 for f in functions if f.is_async)),
        ("parallel groups", sum(len(f.parallel_groups) for f in functions)),
        ("hoisted launches", sum(len(f.hoists) for f in functions)),
        ("warnings (fallbacks)", len(result.warnings)),
        ("compiled without fallback", _clean_share(result.compiled_functions())),
        ("lines / seconds", f"{result.lines} / {result.seconds:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _clean_share(compiled: dict[str, list[Any]]) -> str:
    clean = sum(1 for found in compiled.values() if not found)
    share = f" ({100 * clean / len(compiled):.0f}%)" if compiled else ""
    return f"{clean} of {len(compiled)} functions{share}"


def _parse_input(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NalarcError(f"--input is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NalarcError("--input must be a JSON object whose keys are the workflow's parameters")
    return value


@app.command()
def run(
    target: Annotated[Path, typer.Argument(metavar="APP.py|DIR", help="An app file or a build directory.")],
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", help="Workflow to run.")] = None,
    input: Annotated[Optional[str], typer.Option("--input", "-i", help="JSON object of arguments, or @file.json [{}].")] = None,
    session: Annotated[str, typer.Option("--session", "-s", help="Session id (managed state belongs to it).")] = "default",
    state: Annotated[Optional[Path], typer.Option("--state", help="SQLite file for managed state [.nalarc/state.db].")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Worker processes (or Ray actors); 0 runs calls in the driver [2].")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="Where workers run: process (this machine) or ray [process].")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join with --backend ray [RAY_ADDRESS, else a local cluster].")] = None,
    instances: Annotated[Optional[list[str]], typer.Option("--instances", help="Instances of a component: NAME=COUNT (repeatable).")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Serve the app over HTTP until Ctrl-C.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Show the run's events live on stderr (tokens as text); answer interrupts on stdin.")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (with --serve).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (with --serve; 0: any free port).")] = 8000,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Requests admitted at once before 429 (with --serve).")] = 1024,
    journal: Annotated[Optional[Path], typer.Option("--journal", help="SQLite journal of accepted requests (with --serve) [next to --state: STATE.requests.db; in memory with --state :memory:].")] = None,
    journal_sync: Annotated[str, typer.Option("--journal-sync", help="normal: a commit survives the server being killed; full: also an OS crash (fsync per commit).")] = "normal",
    journal_retention: Annotated[float, typer.Option("--journal-retention", min=0.001, help="Seconds finished requests (and their idempotency keys) are kept (with --serve) [7 days].")] = 7 * 24 * 3600.0,
    journal_max_runs: Annotated[int, typer.Option("--journal-max-runs", min=1, help="Finished requests kept at most, newest first (with --serve).")] = 10_000,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0, help="Seconds admitted requests get to finish after SIGTERM/SIGINT (with --serve); the rest resume at the next start.")] = 30.0,
    journal_max_attempts: Annotated[int, typer.Option("--journal-max-attempts", min=1, help="Runs of a request that may end in a crash of the server; then it is not resumed again but fails with PoisonRequest (with --serve).")] = 3,
    rerun_after_crash: Annotated[int, typer.Option("--rerun-after-crash", min=0, help="Times a retry-safe call is re-run after its worker died; then it fails with BrokenWorkerError.")] = 3,
    load: Annotated[Optional[Path], typer.Option("--load", metavar="TRACE.jsonl", help="Replay a JSONL trace of requests (open loop).")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="R requests/s (open loop): Poisson arrivals of --workflow/--input, or the app's @workload when there is no --input.")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of arrivals with --rate.")] = 10.0,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the load report (every request) as JSON.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --rate arrival times.")] = 0,
    policy: Annotated[Optional[str], typer.Option("--policy", help="Global-controller policy: NAME, FILE.py:Class, or a+b [autoscale].")] = None,
    interval: Annotated[Optional[float], typer.Option("--interval", min=0.001, help="Seconds between policy rounds [0.1].")] = None,
    trace_out: Annotated[Optional[Path], typer.Option("--trace-out", help="Write every call as Chrome trace JSON (Perfetto; nalarc graph --trace).")] = None,
    rate_limit: Annotated[Optional[list[str]], typer.Option("--rate-limit", help="LLM rate limit: MODEL:rpm=N,tpm=N[,window=S,burst=S] (* for any model; repeatable; over [flow] models).")] = None,
    session_budget: Annotated[Optional[int], typer.Option("--session-budget", min=1, help="LLM tokens a session may use before its calls raise BudgetExceeded (over [flow]).")] = None,
    otel_setup: Annotated[Optional[str], typer.Option("--otel-setup", metavar="MODULE:FUNCTION", help="Call this to configure OpenTelemetry (driver and workers) [NALARC_OTEL_SETUP; none: no spans, no exporter].")] = None,
) -> None:
    """Run one request of a workflow and print its JSON result on stdout.

    With --serve, serve the app over HTTP instead; with --load or --rate, run
    a load against it in-process and print latency percentiles.  With --rate,
    a --session containing {i} gives each request a session of its own.

    Settings come from [tool.nalarc] in pyproject.toml or nalarc.toml, then
    NALARC_* environment variables, then these flags.
    """
    from .._config import load_config, parse_instances
    from .._load import load_app
    from ..executor import Placement, run_workflow
    from ..executor._trace import Tracer
    from ..policies import load_policy
    from ._stream import terminal_events

    try:
        if serve + (load is not None) + (rate is not None) > 1:
            raise NalarcError("--serve, --load and --rate exclude each other")
        if stream and (serve or load is not None or rate is not None):
            raise NalarcError("--stream shows one run; with --serve, stream with POST /v1/workflows/NAME/stream")
        if report is not None and load is None and rate is None:
            raise NalarcError("--report needs --load or --rate")
        inputs = _parse_input(input or "{}")
        _configure_telemetry(otel_setup)
        config = load_config(Path.cwd(), {
            "policy": policy,
            "interval": interval,
            "workers": workers,
            "backend": backend,
            "ray_address": ray_address,
            "instances": parse_instances(instances) if instances else None,
            "state": str(state) if state is not None else None,
        })
        loaded = load_app(target)
        tracer = Tracer() if trace_out is not None else None
        placement = Placement(
            workers=config.workers, instances=config.instances, policy=load_policy(config.policy),
            interval=config.interval, tracer=tracer, backend=config.backend, ray_address=config.ray_address or None,
            rerun_after_crash=rerun_after_crash,
            flow=_flow_with_flags(config.flow, rate_limit or [], session_budget),
        )
        try:
            if serve:
                if journal_sync not in ("normal", "full"):
                    raise NalarcError(f"--journal-sync must be normal or full, got {journal_sync!r}")
                durability = _Durability(journal, journal_sync, journal_retention, journal_max_runs, drain_timeout,
                                         journal_max_attempts)
                _serve(loaded, Path(config.state), placement, host, port, max_queue, durability)
                return
            if load is not None or rate is not None:
                _load(loaded, Path(config.state), placement, load, rate, duration, workflow,
                      None if input is None else inputs, session, seed, report)
                return
            with terminal_events() if stream else contextlib.nullcontext():
                result = run_workflow(loaded, workflow, inputs, session=session, state_path=Path(config.state),
                                      placement=placement)
        finally:
            if tracer is not None and trace_out is not None:
                tracer.write(trace_out)
            _telemetry.flush()
    except CompileError as exc:
        raise _fail(exc) from None
    except (NalarcError, OSError) as exc:
        raise _fail(exc) from None
    except Exception as exc:  # the workflow raised: show where, like Python would
        traceback.print_exception(exc, file=sys.stderr)
        raise typer.Exit(1) from None
    try:
        print(json.dumps(result, sort_keys=True))
    except TypeError as exc:
        raise _fail(NalarcError(f"the workflow's result is not JSON-serializable: {exc}")) from None


def _flow_with_flags(flow: Any, rate_limits: list[str], session_budget: Optional[int]) -> Any:
    """``[flow]`` from the config file, with ``--rate-limit`` and ``--session-budget`` over it."""
    import dataclasses

    from .._flow import parse_limits

    models = dict(flow.models)
    for text in rate_limits:
        models.update(parse_limits(text, "--rate-limit"))
    budget = session_budget if session_budget is not None else flow.session_token_budget
    return dataclasses.replace(flow, models=models, session_token_budget=budget)


def _configure_telemetry(setup: Optional[str]) -> None:
    """``--otel-setup``: the hook configures this process now, and each worker (through the environment) at its start."""
    if setup is not None:
        os.environ[_telemetry.SETUP_ENV] = setup
    try:
        _telemetry.configure_from_env()
    except (ImportError, AttributeError, ValueError) as exc:
        raise NalarcError(f"--otel-setup / {_telemetry.SETUP_ENV}: {exc}") from None


@dataclass(frozen=True)
class _Durability:
    """The --journal* and --drain-timeout options of --serve."""

    journal: Optional[Path]
    sync: str
    retention: float
    max_runs: int
    drain_timeout: float
    max_attempts: int


def _serve(loaded: Any, state: Path, placement: Any, host: str, port: int, max_queue: int,
           durability: _Durability) -> None:
    """``--serve``: HTTP until SIGINT / SIGTERM, then drain (a second signal stops at once)."""
    import signal

    import trio

    from ..executor import open_service
    from ..serve import serve
    from ..serve._journal import Journal, journal_path_for
    from ..executor._statestore import StateStore

    journal_path = durability.journal if durability.journal is not None else journal_path_for(state)
    journal = Journal(journal_path, sync="full" if durability.sync == "full" else "normal",
                      retention=durability.retention, max_runs=durability.max_runs,
                      max_attempts=durability.max_attempts)

    async def main() -> None:
        store = StateStore(state)
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with open_service(loaded, store, placement) as service, trio.open_nursery() as nursery:
                    async def stop() -> None:
                        async for _ in signals:
                            nursery.start_soon(stop_now)  # the first signal drains, a second one stops at once
                            return

                    async def stop_now() -> None:
                        async for _ in signals:
                            nursery.cancel_scope.cancel()
                            return

                    async def serving(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
                        await serve(loaded, service, host, port, max_queue=max_queue, journal=journal,
                                    drain_timeout=durability.drain_timeout, shutdown_trigger=stop,
                                    task_status=task_status)
                        nursery.cancel_scope.cancel()  # stopped: no more waiting for a second signal

                    unfinished = len(journal.unfinished())
                    urls = await nursery.start(serving)
                    names = ", ".join(sorted(loaded.workflows)) or "no workflows"
                    resumed = f"; resumed {unfinished} unfinished request(s) from {journal_path}" if unfinished else ""
                    print(f"nalarc: serving {names} on {' '.join(urls)} (POST /v1/workflows/NAME; Ctrl-C to stop)"
                          f"{resumed}", file=sys.stderr, flush=True)
                left = len(journal.unfinished())
                if left:
                    what = (f"they resume at the next start on {journal_path}" if journal_path is not None
                            else "they are lost: the journal was in memory (--state :memory:)")
                    print(f"nalarc: stopped with {left} request(s) unfinished; {what}", file=sys.stderr, flush=True)
        finally:
            store.close()
            journal.close()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:  # trio nurseries wrap even a single error
        leaves = _leaves(group)
        if len(leaves) != 1:
            raise
        error = leaves[0]
        if isinstance(error, OSError) and error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise NalarcError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        raise error from None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [leaf for e in group.exceptions for leaf in (_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])]


def _load(loaded: Any, state: Path, placement: Any, trace: Optional[Path], rate: Optional[float], duration: float,
          workflow: Optional[str], inputs: Optional[dict[str, Any]], session: str, seed: int,
          report_path: Optional[Path]) -> None:
    """``--load`` / ``--rate``: an open-loop load against an in-process service.

    ``--rate`` without ``--input`` replays the app's ``@workload`` if it has one.
    """
    import trio

    from ..executor import open_service
    from ..serve import has_workload, poisson_arrivals, read_trace, resolve_arrivals, run_load, workload_arrivals, write_report
    from ._load import progress_display, report_table
    from ..executor._statestore import StateStore

    if trace is not None:
        arrivals = read_trace(trace)
    elif inputs is None and has_workload(loaded):
        assert rate is not None
        arrivals = workload_arrivals(loaded, rate, duration, seed)
    else:
        assert rate is not None
        arrivals = poisson_arrivals(rate, duration, workflow, inputs or {}, seed=seed, session=session)
    arrivals = resolve_arrivals(loaded, arrivals)

    async def main() -> dict[str, Any]:
        store = StateStore(state)
        try:
            async with open_service(loaded, store, placement) as service:
                with progress_display(err, len(arrivals)) as on_progress:
                    return await run_load(service, arrivals, on_progress=on_progress)
        finally:
            store.close()

    report = trio.run(main)
    report["config"] = {"trace": str(trace) if trace else None, "rate": rate,
                        "duration": duration if trace is None else None, "seed": seed, "workers": placement.workers}
    Console().print(report_table(report))
    if report_path is not None:
        write_report(report, report_path)


def _register_graph() -> None:
    from ._graph import graph

    app.command()(graph)


_register_graph()


def main() -> None:
    app()
