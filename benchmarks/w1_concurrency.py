"""W1 (a diamond plus a fan-out) at 1 and 20 concurrent requests over HTTP: nalarc, asyncio, LangGraph.

Run: ``python benchmarks/w1_concurrency.py [--concurrency 1 20] [--repeat 5] [--delay 0.15]
[--fanout 6] [--systems nalarc nalarc-sized asyncio langgraph] [--variant NAME='FLAGS']
[--app APP.py] [--one-session] [--trace DIR] [--py-spy DIR] [--out FILE.json]``

The app is ``examples/w1_diamond.py``: the ``plan`` tool, then ``k`` (``--fanout``, 6)
calls of the ``Searcher`` agent and one ``fetch`` tool call side by side, then the
``combine`` tool; every call sleeps ``--delay`` seconds (``time.sleep``: synchronous,
I/O-bound) and every component has ``max_instances=8``.  The critical path is 3 calls
(0.45 s at 0.15 s).  The fan-out is on an agent because that is what issue 13 measured
(one request at 1.35x the critical path: an agent instance runs 4 calls at once); a tool
runs 16.

Every system is a real HTTP server on 127.0.0.1, started here as a process of its own
and sent the same requests by one httpx client (asyncio) in this process:

* ``nalarc``: ``nalarc run examples/w1_diamond.py --serve`` with default flags;
* ``nalarc-sized``: the same with every component at its ``max_instances``, by hand
  (``--instances plan=8 --instances Searcher=8 ...``);
* ``nalarc:NAME`` for each ``--variant NAME=FLAGS``: more ``nalarc run`` flags to compare;
* ``asyncio`` and ``langgraph`` (if installed): the same functions, scheduled by plain
  asyncio (``asyncio.to_thread`` + ``gather``) and by a LangGraph ``StateGraph``,
  behind hypercorn on asyncio (``benchmarks/_w1_baselines.py`` says how);
* ``asyncio-native`` (only if asked): ``asyncio.sleep`` instead of the blocking sleeps,
  a floor.

All servers run at once and the rounds are interleaved (round r: each system in turn
gets one request, then a burst of N concurrent ones), so a change in the machine's
load hits every system alike.  Before the rounds each server gets one request and one
burst of the largest N (warm-up: connections open, worker threads start; the warm-up
burst is reported as ``cold``).  Each request of a burst has a session of its own.
Reported per system and N: the makespan of a burst (first request sent to last answer
received; median, min and max over ``--repeat`` rounds), the per-request latency
(median and max over every request of those rounds), their ratios to the critical path,
the HTTP floor (the makespan of N concurrent ``GET /healthz``), and the CPU seconds a
burst cost the server process and its children (nalarc's workers), from ``/proc``.  Every
answer is checked against what plain Python returns; a wrong or failed one makes the
script exit 1.  ``--one-session`` sends no session header (every request in nalarc's
``default`` session); ``--app`` serves another nalarc app taking the same inputs.

``--trace DIR`` runs the nalarc servers with ``--trace-out`` and adds, per component, the
mean time its calls queued at their instance and the mean time from sending a call to
its worker to its answer minus the sleep (transport, thread start-up, GIL) over the
measured bursts.  ``--py-spy DIR`` records the nalarc driver and its workers with
py-spy during the measured bursts (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "w1_diamond.py"
BASELINES = Path(__file__).resolve().parent / "_w1_baselines.py"
#: The components of W1 (``--instances`` names; the trace labels the agent's calls ``Searcher.search``).
COMPONENTS = ("plan", "Searcher", "fetch", "combine")
#: The acceptance targets of issue 13 (nalarc with default flags): one request within 5% of
#: the critical path; a burst of 20 within 0.6 s, i.e. 4/3 of the critical path (other
#: delays scale it).
SINGLE_TARGET_RATIO = 1.05
BURST_TARGET_RATIO = 0.6 / 0.45
BURST_TARGET_N = 20
ALL_SYSTEMS = ("nalarc", "nalarc-sized", "asyncio", "langgraph", "asyncio-native")
DEFAULT_SYSTEMS = ("nalarc", "nalarc-sized", "asyncio", "langgraph")


@dataclass
class Server:
    """One system's HTTP server process."""

    system: str
    command: list[str]
    log: Path
    cwd: Path
    trace: Path | None = None
    #: a ``nalarc run --serve`` (profiled by ``--py-spy``)
    is_nalarc: bool = False
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    #: measured: concurrency -> list of (makespan, latencies) per round
    bursts: dict[int, list[tuple[float, list[float]]]] = field(default_factory=lambda: defaultdict(list))
    floors: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    cold: float | None = None
    errors: int = 0
    #: measured: concurrency -> CPU seconds (server process, its children) per round
    cpu: dict[int, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    #: sessions of the measured requests, for the trace summary
    sessions: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))


@dataclass
class Workload:
    """What each request asks, and the answers plain Python gives (computed once per question)."""

    k: int
    delay: float
    #: send no session header: every request in nalarc's ``default`` session
    one_session: bool = False
    expected: dict[str, Any] = field(default_factory=dict)

    def body(self, session: str) -> dict[str, Any]:
        return {"question": f"question {session}", "k": self.k, "delay": self.delay}

    def headers(self, session: str) -> dict[str, str]:
        return {} if self.one_session else {"x-nalarc-session": session}

    def correct(self, session: str, answer: Any) -> bool:
        question = self.body(session)["question"]
        if question not in self.expected:
            self.expected[question] = plain_w1()(question, self.k, 0.0)  # the same with any delay
        return bool(answer == self.expected[question])


def plain_w1() -> Any:
    """The workflow of ``examples/w1_diamond.py`` as plain Python."""
    sys.path.insert(0, str(BASELINES.parent))
    from _w1_baselines import W1

    return W1.w1


def nalarc_command(flags: list[str], trace: Path | None, workdir: Path, app: Path) -> list[str]:
    command = [sys.executable, "-m", "nalarc", "run", str(app), "--serve", "--port", "0",
               "--state", str(workdir / "state.db"), *flags]
    if trace is not None:
        command += ["--trace-out", str(trace)]
    return command


#: The extra ``nalarc run`` flags of each nalarc system (``--variant`` adds ``nalarc:NAME``).
NALARC_FLAGS: dict[str, list[str]] = {
    "nalarc": [],
    "nalarc-sized": [flag for name in COMPONENTS for flag in ("--instances", f"{name}=8")],
}


def make_server(system: str, workdir: Path, trace_dir: Path | None, app: Path, nalarc_flags: dict[str, list[str]]) -> Server:
    home = workdir / system.replace(":", "_")
    home.mkdir(parents=True)
    if system in nalarc_flags:
        trace = trace_dir / f"{system.replace(':', '_')}.json" if trace_dir is not None else None
        return Server(system, nalarc_command(nalarc_flags[system], trace, home, app), home / "server.log", home, trace,
                      is_nalarc=True)
    args = ["asyncio", "--native-sleep"] if system == "asyncio-native" else [system]
    return Server(system, [sys.executable, str(BASELINES), *args], home / "server.log", home)


def start(server: Server, timeout: float = 180.0) -> None:
    """Start the server and wait for the URL it announces on stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with server.log.open("wb") as log:
        server.process = subprocess.Popen(server.command, cwd=server.cwd, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", server.log.read_text(errors="replace"))
        if found:
            server.url = found.group(1)
            return
        if server.process.poll() is not None:
            break
        time.sleep(0.05)
    stop(server)
    raise RuntimeError(f"{server.system} did not start:\n{server.log.read_text(errors='replace')[-3000:]}")


def stop(server: Server) -> None:
    """SIGINT (a graceful stop: nalarc writes its trace then), else kill."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    with ExitStack() as stack:
        for server in servers:
            start(server)
            stack.callback(stop, server)
        yield


def critical_path(delay: float) -> float:
    return 3 * delay


async def one_request(client: httpx.AsyncClient, server: Server, session: str, load: Workload) -> tuple[float, float, bool]:
    """(sent, answered, correct) for one POST."""
    sent = time.perf_counter()
    response = await client.post(f"{server.url}/v1/workflows/w1", json=load.body(session), headers=load.headers(session))
    answered = time.perf_counter()
    return sent, answered, response.status_code == 200 and load.correct(session, response.json().get("result"))


async def burst(client: httpx.AsyncClient, server: Server, n: int, label: str,
                load: Workload) -> tuple[float, list[float], list[str]]:
    """``n`` concurrent requests: (makespan, latencies, sessions)."""
    sessions = [f"{label}-{i}" for i in range(n)]
    for session in sessions:
        load.correct(session, None)  # plain Python's answer, computed before the clock starts
    results = await asyncio.gather(*(one_request(client, server, s, load) for s in sessions))
    server.errors += sum(not ok for _, _, ok in results)
    makespan = max(a for _, a, _ in results) - min(s for s, _, _ in results)
    return makespan, [a - s for s, a, _ in results], sessions


async def http_floor(client: httpx.AsyncClient, server: Server, n: int) -> float:
    async def get() -> tuple[float, float]:
        sent = time.perf_counter()
        (await client.get(f"{server.url}/healthz")).raise_for_status()
        return sent, time.perf_counter()

    stamps = await asyncio.gather(*(get() for _ in range(n)))
    return max(a for _, a in stamps) - min(s for s, _ in stamps)


async def measure(servers: list[Server], levels: list[int], repeat: int, load: Workload,
                  profile: PySpy | None = None) -> None:
    widest = max(levels)
    limits = httpx.Limits(max_connections=widest + 8, max_keepalive_connections=widest + 8)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        for server in servers:  # warm-up
            await burst(client, server, 1, "warm-1", load)
            server.cold = (await burst(client, server, widest, "warm-n", load))[0]
        if profile is not None:
            profile.start()
        try:
            for round_ in range(repeat):
                for server in servers:
                    for n in levels:
                        before = cpu_seconds(server)
                        makespan, latencies, sessions = await burst(client, server, n, f"c{n}-r{round_}", load)
                        after = cpu_seconds(server)
                        server.cpu[n].append((after[0] - before[0], after[1] - before[1]))
                        server.bursts[n].append((makespan, latencies))
                        server.sessions[n].update(sessions)
                        server.floors[n].append(await http_floor(client, server, n))
        finally:
            if profile is not None:
                profile.stop()


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``; 0 elsewhere or once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(server: Server) -> tuple[float, float]:
    """CPU seconds so far of the server process and of its child processes (nalarc's workers)."""
    assert server.process is not None
    pid = server.process.pid
    return _proc_cpu(pid), sum(_proc_cpu(child) for child in _children(pid))


class PySpy:
    """``py-spy record`` of the nalarc servers (driver and workers) while the rounds run."""

    def __init__(self, servers: list[Server], out_dir: Path) -> None:
        self.servers, self.out_dir = [s for s in servers if s.is_nalarc], out_dir
        self.recorders: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        executable = shutil.which("py-spy")
        if executable is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            assert server.process is not None
            self.recorders.append(subprocess.Popen(
                [executable, "record", "--pid", str(server.process.pid), "--subprocesses", "--gil", "--rate", "100",
                 "--format", "raw", "--output", str(self.out_dir / f"{server.system.replace(':', '_')}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        for recorder in self.recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in self.recorders:
            recorder.wait(timeout=60)

    def summary(self) -> dict[str, Any]:
        return {s.system: spy_summary(self.out_dir / f"{s.system.replace(':', '_')}.txt") for s in self.servers}


def spy_summary(path: Path, rate: int = 100, top: int = 10) -> dict[str, Any]:
    """Seconds holding the GIL per process (driver, each worker) and the driver's busiest functions (self time)."""
    per_process: Counter[str] = Counter()
    driver_self: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        name = "driver" if len(processes) < 2 else processes[-1].rsplit(" ", 1)[-1].rstrip('"')
        per_process[name] += int(count)
        if name == "driver":
            driver_self[re.sub(r"\(.*/", "(", frames[-1])] += int(count)
    return {"gil_seconds": {k: round(v / rate, 2) for k, v in sorted(per_process.items())},
            "driver_top_self": [(f, round(n / rate, 3)) for f, n in driver_self.most_common(top)]}


def trace_summary(server: Server, delay: float) -> dict[str, Any]:
    """Per component and concurrency, over the measured bursts: mean queue time, mean round trip
    beyond the sleep (ms), and how the calls were spread over instances (totals over the rounds)."""
    assert server.trace is not None
    events = [e for e in json.loads(server.trace.read_text(encoding="utf-8"))["traceEvents"] if e["ph"] == "X"]
    out: dict[str, Any] = {}
    for n, sessions in server.sessions.items():
        mine = [e for e in events if e["args"]["session"] in sessions]
        per_tool: dict[str, Any] = {}
        for label in sorted({e["name"] for e in mine}):
            calls = [e for e in mine if e["name"] == label]
            per_instance = Counter(e["args"]["instance"] for e in calls)
            if calls:
                per_tool[label] = {
                    "calls": len(calls),
                    "queue_ms": round(statistics.mean(e["args"]["queue_ms"] for e in calls), 2),
                    "beyond_sleep_ms": round(statistics.mean(e["dur"] / 1000 - delay * 1000 for e in calls), 2),
                    "instances": len(per_instance),
                    # calls routed to the busiest and the idlest instance: an uneven split queues
                    # calls at one instance while another has free slots
                    "calls_per_instance_min": min(per_instance.values()),
                    "calls_per_instance_max": max(per_instance.values()),
                }
        out[str(n)] = per_tool
    return out


def rows_of(servers: list[Server], levels: list[int], delay: float) -> list[dict[str, Any]]:
    cp = critical_path(delay)
    rows = []
    for server in servers:
        for n in levels:
            rounds = server.bursts[n]
            makespans = [m for m, _ in rounds]
            latencies = [x for _, lat in rounds for x in lat]
            makespan = statistics.median(makespans)
            row: dict[str, Any] = {
                "system": server.system, "concurrency": n,
                "makespan_s": round(makespan, 4), "makespan_min_s": round(min(makespans), 4),
                "makespan_max_s": round(max(makespans), 4), "makespan_vs_critical": round(makespan / cp, 3),
                "latency_p50_s": round(statistics.median(latencies), 4), "latency_max_s": round(max(latencies), 4),
                "latency_p50_vs_critical": round(statistics.median(latencies) / cp, 3),
                "http_floor_ms": round(statistics.median(server.floors[n]) * 1000, 2),
                "server_cpu_s": round(statistics.median(c for c, _ in server.cpu[n]), 3),
                "children_cpu_s": round(statistics.median(c for _, c in server.cpu[n]), 3),
                "rounds": len(rounds),
            }
            if n == max(levels):
                row["cold_makespan_s"] = round(server.cold or 0.0, 4)
            if server.system == "nalarc" and n in (1, BURST_TARGET_N):  # the targets are for default flags
                limit = cp * (SINGLE_TARGET_RATIO if n == 1 else BURST_TARGET_RATIO)
                row["target_s"] = round(limit, 4)
                row["meets_target"] = makespan <= limit
                row["target"] = f"<= {limit:.3f} s: {'met' if makespan <= limit else 'missed'}"
            rows.append(row)
    return rows


def available(system: str) -> tuple[bool, str]:
    if system == "langgraph":
        try:
            import langgraph.graph  # noqa: F401  (``langgraph`` alone may be a namespace left by its plugins)
        except ImportError:
            return False, "langgraph is not installed (pip install 'nalarc[bench]')"
    return True, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20], help="requests at once in a burst")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds")
    parser.add_argument("--delay", type=float, default=0.15, help="seconds each tool sleeps")
    parser.add_argument("--fanout", type=int, default=6, help="searches per request (k)")
    parser.add_argument("--systems", nargs="*", default=list(DEFAULT_SYSTEMS), choices=ALL_SYSTEMS)
    parser.add_argument("--trace", type=Path, default=None, help="trace the nalarc servers here and summarize queueing")
    parser.add_argument("--py-spy", dest="py_spy", type=Path, default=None, help="py-spy the nalarc servers here")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="one more nalarc server, 'nalarc:NAME', with these nalarc run flags (repeatable)")
    parser.add_argument("--app", type=Path, default=APP, help="the nalarc app (the baselines always run W1)")
    parser.add_argument("--one-session", action="store_true",
                        help="send no X-Nalarc-Session header (every request in the default session)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    skipped: dict[str, str] = {}
    systems = []
    nalarc_flags = dict(NALARC_FLAGS)
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        nalarc_flags[f"nalarc:{name}"] = flags.split()
        args.systems.append(f"nalarc:{name}")
    for system in args.systems:
        ok, why = available(system)
        if ok:
            systems.append(system)
        else:
            skipped[system] = why
    levels = sorted(set(args.concurrency))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="w1-") as tmp:
        servers = [make_server(system, Path(tmp), args.trace, args.app, nalarc_flags) for system in systems]
        if args.trace is not None:
            args.trace.mkdir(parents=True, exist_ok=True)
        with running(servers):
            profile = PySpy(servers, args.py_spy) if args.py_spy is not None else None
            load = Workload(args.fanout, args.delay, one_session=args.one_session)
            asyncio.run(measure(servers, levels, args.repeat, load, profile))
        rows = rows_of(servers, levels, args.delay)
        spy = profile.summary() if profile is not None else None
        traces = {s.system: trace_summary(s, args.delay) for s in servers if s.trace is not None}
    errors = {s.system: s.errors for s in servers}
    columns = ["system", "concurrency", "makespan_s", "makespan_min_s", "makespan_max_s", "makespan_vs_critical",
               "latency_p50_s", "latency_max_s", "http_floor_ms", "server_cpu_s", "cold_makespan_s", "target"]
    extra: dict[str, Any] = {
        "critical_path_s": critical_path(args.delay), "delay_s": args.delay, "fanout": args.fanout,
        "repeat": args.repeat, "concurrency": levels, "errors": errors, "skipped": skipped,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "targets": {"single_vs_critical": SINGLE_TARGET_RATIO, "burst_vs_critical": round(BURST_TARGET_RATIO, 4),
                    "burst_concurrency": BURST_TARGET_N},
    }
    if traces:
        extra["trace"] = traces
    if spy is not None:
        extra["py_spy"] = spy
    os.environ.setdefault("COLUMNS", "200")  # rich: room for every column when stderr is not a terminal
    report("W1 under concurrency (HTTP)", rows, columns, args.out, extra)
    for system, why in skipped.items():
        print(f"skipped {system}: {why}", file=sys.stderr)
    if any(errors.values()):
        print(f"wrong or failed answers: {errors}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
