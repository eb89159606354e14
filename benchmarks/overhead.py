"""Round trip of a no-op component call, and futures/s, against raw sockets (and Ray).

Run: ``python benchmarks/overhead.py [--calls 2000] [--out report.json]``

Measured in one run, same machine:

* ``raw socket``: a 64-byte ping-pong between two Python processes over a Unix
  socket (the floor any process boundary costs);
* ``nalarc in-process``: a compiled no-op tool call and the wait for its
  value, the tool running in the driver (a worker thread);
* ``nalarc worker process``: the same call routed by the instance controller
  to a worker process and back;
* ``ray task`` / ``ray actor call`` when Ray is installed (``pip install ray``).

Round trips are sequential calls (median and p99 in microseconds).
Throughput starts ``--batch`` calls at once and waits for all of them.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import trio

from _common import report
from nalarc import load_app
from nalarc.executor import Placement, _rt
from nalarc.executor._app import open_backend
from nalarc.executor._local import run_frame
from nalarc.executor._statestore import StateStore

APP = '''
import nalarc

@nalarc.tool
def noop(x):
    return x

@nalarc.workflow
def main():
    return noop(1)
'''


def summarize(name: str, samples: list[float], throughput: float | None) -> dict[str, Any]:
    samples_us = sorted(s * 1e6 for s in samples)
    return {
        "path": name,
        "median us": statistics.median(samples_us),
        "p99 us": samples_us[int(len(samples_us) * 0.99) - 1],
        "calls/s": throughput,
    }


def raw_socket(calls: int) -> dict[str, Any]:
    """Ping-pong with a child Python process over a Unix socket."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import socket
            s = socket.socket(socket.AF_UNIX); s.connect({path!r})
            while True:
                data = s.recv(64)
                if not data: break
                s.sendall(data)
        """)])
        conn, _ = server.accept()
        payload = b"x" * 64
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            conn.sendall(payload)
            got = b""
            while len(got) < 64:
                got += conn.recv(64)
            samples.append(time.perf_counter() - started)
        conn.close()
        child.wait()
    return summarize("raw socket (2 processes)", samples, None)


async def _measure(backend: Any, noop: Any, calls: int, batch: int) -> tuple[list[float], float]:
    async def body() -> tuple[list[float], float]:
        samples = []
        for i in range(calls):
            started = time.perf_counter()
            await _rt.m(_rt.call(noop, None, 0, (i,), {}))
            samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        pending = [_rt.call(noop, None, 0, (i,), {}) for i in range(batch)]
        for p in pending:
            await _rt.m(p)
        return samples, batch / (time.perf_counter() - started)

    return await run_frame(body, (), {}, backend.new_runtime(), "bench", "bench")  # type: ignore[no-any-return]


def nalarc_paths(calls: int, batch: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "noop_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
        app = load_app(Path(tmp) / "noop_app.py", out_dir=Path(tmp) / "build")
        noop = app.module.noop
        for name, placement in (("nalarc in-process", None), ("nalarc worker process", Placement(workers=1))):
            async def run(placement: Placement | None = placement) -> tuple[list[float], float]:
                async with open_backend(app, StateStore(None), placement) as backend:
                    await _measure(backend, noop, 50, 50)  # warm up
                    return await _measure(backend, noop, calls, batch)

            samples, throughput = trio.run(run)
            rows.append(summarize(name, samples, throughput))
    return rows


def ray_paths(calls: int, batch: int) -> list[dict[str, Any]]:
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
        samples = []
        for i in range(calls):
            started = time.perf_counter()
            ray.get(submit(i))
            samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        ray.get([submit(i) for i in range(batch)])
        rows.append(summarize(name, samples, batch / (time.perf_counter() - started)))
    ray.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [raw_socket(args.calls), *nalarc_paths(args.calls, args.batch), *ray_paths(args.calls, args.batch)]
    floor = rows[0]["median us"]
    for row in rows:
        row["x raw socket"] = row["median us"] / floor
    report("no-op component call: round trip and throughput", rows,
           ["path", "median us", "p99 us", "x raw socket", "calls/s"], args.out)


if __name__ == "__main__":
    main()
