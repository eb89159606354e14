"""Round trip of a no-op component call, and futures/s, against raw sockets (and Ray).

Run: ``python benchmarks/overhead.py [--calls 1000] [--rounds 5] [--out report.json]``

Measured in one process, in interleaved rounds, so that every path sees the
same machine (other jobs on a shared machine move every figure; the floors
measured in the same round say by how much):

* ``raw socket``: a 64-byte ping-pong between two Python processes over a Unix
  socket, blocking on both sides (the floor any process boundary costs);
* ``trio echo``: the driver's side of that ping-pong from trio (a reader task
  hands each reply to the waiting task, as the driver's read loop does): the
  floor for a trio driver;
* ``trio wait_readable``: the task that sent reads the reply itself (no reader
  task): the least any trio driver can cost;
* ``nalarc in-process``: a compiled no-op tool call and the wait for its
  value, the tool running in the driver (a worker thread);
* ``nalarc worker process``: the same call routed by the instance controller
  to a worker process and back;
* ``ray task`` / ``ray actor call`` when Ray is installed (``pip install ray``),
  measured after the others (Ray starts its own processes), and ``nalarc on a
  Ray actor``: the same compiled call on nalarc's Ray backend.

Round trips are sequential calls: the median of the rounds' medians (and the
lowest), p99 over all calls, in microseconds.  Throughput starts ``--batch``
calls at once and waits for all of them.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from _common import report, summarize
from nalarc import load_app
from nalarc import runtime as _rt
from nalarc.executor import Placement
from nalarc.executor._app import open_backend
from nalarc.executor._local import run_frame
from nalarc.executor._statestore import StateStore
from nalarc.runtime import lowlevel

APP = '''
import nalarc

@nalarc.tool
def noop(x):
    return x

@nalarc.workflow
def main():
    return noop(1)
'''

ECHO_CHILD = """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while True:
    data = s.recv(64)
    if not data: break
    s.sendall(data)
"""


def _echo_child(tmp: str, name: str) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A child process echoing 64-byte messages; our end of its socket."""
    path = str(Path(tmp) / name)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(ECHO_CHILD), path])
    conn, _ = server.accept()
    server.close()
    return conn, child


def raw_round(conn: socket.socket, calls: int) -> list[float]:
    """Blocking ping-pong (runs in the trio thread, blocking it: nothing else is running)."""
    payload = b"x" * 64
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.sendall(payload)
        got = 0
        while got < 64:
            got += len(conn.recv(64))
        samples.append(time.perf_counter() - started)
    return samples


async def trio_echo_round(fd: int, calls: int) -> list[float]:
    """The same ping-pong from trio: a reader task sets an event the caller waits on."""
    samples: list[float] = []
    waiting: list[trio.Event] = []

    async def reader() -> None:
        while True:
            await trio.lowlevel.wait_readable(fd)
            if os.read(fd, 65536):
                waiting.pop().set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        for _ in range(calls):
            started = time.perf_counter()
            done = trio.Event()
            waiting.append(done)
            os.write(fd, b"x" * 64)
            await done.wait()
            samples.append(time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return samples


async def trio_direct_round(fd: int, calls: int) -> list[float]:
    """The same ping-pong from one trio task: write, wait until readable, read."""
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        os.write(fd, b"x" * 64)
        await trio.lowlevel.wait_readable(fd)
        os.read(fd, 65536)
        samples.append(time.perf_counter() - started)
    return samples


async def nalarc_round(runtime: lowlevel.Runtime, noop: Any, calls: int) -> list[float]:
    async def body() -> list[float]:
        samples = []
        for i in range(calls):
            started = time.perf_counter()
            await _rt.m(_rt.call(noop, None, 0, (i,), {}))
            samples.append(time.perf_counter() - started)
        return samples

    return await run_frame(body, (), {}, runtime, "bench", "bench")  # type: ignore[no-any-return]


async def nalarc_throughput(runtime: lowlevel.Runtime, noop: Any, batch: int) -> float:
    async def body() -> float:
        started = time.perf_counter()
        pending = [_rt.call(noop, None, 0, (i,), {}) for i in range(batch)]
        for p in pending:
            await _rt.m(p)
        return batch / (time.perf_counter() - started)

    return await run_frame(body, (), {}, runtime, "bench", "bench")  # type: ignore[no-any-return]


def _noop_app(tmp: str) -> Any:
    (Path(tmp) / "noop_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(Path(tmp) / "noop_app.py", out_dir=Path(tmp) / "build")


async def local_paths(calls: int, rounds: int, batch: int) -> list[dict[str, Any]]:
    """Raw socket, trio echo, nalarc in-process and worker process, interleaved round by round."""
    with tempfile.TemporaryDirectory() as tmp:
        app = _noop_app(tmp)
        noop = app.module.noop
        raw, raw_child = _echo_child(tmp, "raw")
        echo, echo_child = _echo_child(tmp, "echo")
        echo.setblocking(False)
        store = StateStore(None)
        paths: dict[str, Callable[[], Awaitable[list[float]]]] = {}
        throughput: dict[str, float] = {}
        try:
            async with open_backend(app, store, None) as inline, \
                    open_backend(app, store, Placement(workers=1)) as process:
                runtimes = {"nalarc in-process": inline.new_runtime(), "nalarc worker process": process.new_runtime()}

                async def raw_path() -> list[float]:
                    return raw_round(raw, calls)

                paths["raw socket (2 processes)"] = raw_path
                paths["trio echo (driver floor)"] = lambda: trio_echo_round(echo.fileno(), calls)
                paths["trio wait_readable (least for trio)"] = lambda: trio_direct_round(echo.fileno(), calls)
                for name, runtime in runtimes.items():
                    paths[name] = lambda runtime=runtime: nalarc_round(runtime, noop, calls)  # type: ignore[misc]
                    await nalarc_round(runtime, noop, 100)  # warm up
                samples: dict[str, list[list[float]]] = {name: [] for name in paths}
                for _ in range(rounds):
                    for name, measure in paths.items():
                        samples[name].append(await measure())
                for name, runtime in runtimes.items():
                    await nalarc_throughput(runtime, noop, batch)  # warm up
                    throughput[name] = max([await nalarc_throughput(runtime, noop, batch) for _ in range(3)])
        finally:
            for conn, child in ((raw, raw_child), (echo, echo_child)):
                conn.close()
                child.wait()
    return [summarize(name, rows, throughput.get(name)) for name, rows in samples.items()]


def ray_paths(calls: int, rounds: int, batch: int) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        return []
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")

    @ray.remote
    def noop_task(x: Any) -> Any:
        return x

    @ray.remote
    class Noop:
        def call(self, x: Any) -> Any:
            return x

    actor = Noop.remote()
    rows = []
    for name, submit in (("ray task", noop_task.remote), ("ray actor call", actor.call.remote)):
        ray.get([submit(i) for i in range(50)])
        measured = []
        for _ in range(rounds):
            samples = []
            for i in range(calls):
                started = time.perf_counter()
                ray.get(submit(i))
                samples.append(time.perf_counter() - started)
            measured.append(samples)
        started = time.perf_counter()
        ray.get([submit(i) for i in range(batch)])
        rows.append(summarize(name, measured, batch / (time.perf_counter() - started)))
    rows.append(trio.run(nalarc_on_ray, calls, rounds, batch))
    ray.shutdown()
    return rows


async def nalarc_on_ray(calls: int, rounds: int, batch: int) -> dict[str, Any]:
    """The compiled call on nalarc's Ray backend (one actor), on the cluster already started."""
    with tempfile.TemporaryDirectory() as tmp:
        app = _noop_app(tmp)
        async with open_backend(app, StateStore(None), Placement(workers=1, backend="ray")) as backend:
            runtime = backend.new_runtime()
            await nalarc_round(runtime, app.module.noop, 50)  # warm up
            measured = [await nalarc_round(runtime, app.module.noop, calls) for _ in range(rounds)]
            throughput = max([await nalarc_throughput(runtime, app.module.noop, batch) for _ in range(2)])
    return summarize("nalarc on a Ray actor", measured, throughput)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--same-cpu", action="store_true",
                        help="pin this process and the workers it starts to CPU 0 (waking a process on "
                             "an idle vCPU costs more than the rest of a round trip on some VMs)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.same_cpu:
        os.sched_setaffinity(0, {0})  # inherited by the worker and echo processes
    rows = trio.run(local_paths, args.calls, args.rounds, args.batch)
    if not args.no_ray:
        rows += ray_paths(args.calls, args.rounds, args.batch)
    floor = rows[0]["median us"]
    for row in rows:
        row["x raw socket"] = row["median us"] / floor
    report("no-op component call: round trip and throughput", rows,
           ["path", "median us", "best round us", "p99 us", "x raw socket", "calls/s"], args.out,
           {"load average": os.getloadavg(), "same cpu": args.same_cpu})


if __name__ == "__main__":
    main()
