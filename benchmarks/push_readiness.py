"""Push readiness: a chain of tools passing a large value, with the value pushed worker to worker or relayed by the driver.

Run: ``python benchmarks/push_readiness.py [--sizes 65536,1048576,16777216] [--runs 7] [--out report.json]``

The app: ``source`` makes ``size`` bytes, ``step_a`` / ``step_b`` pass them on,
``measure`` returns their length.  With 2 workers and one instance each,
``step_a`` and ``measure`` live on w0, ``source`` and ``step_b`` on w1, so
every one of the 5 hops crosses from one worker process to the other:
``source -> step_a -> step_b -> step_a -> step_b -> measure``.

For each size, both ways, alternating run by run (same machine, same moment):

* ``push``: each call is placed when it is made; the value goes from the
  worker that produced it to the worker that needs it, and the driver sends
  only the call (the default, ``Placement(push=True)``);
* ``relay``: each call waits in the driver, which receives the value and
  sends it on with the call (``Placement(push=False)``, nalarc before push
  readiness).

Reported per request: latency (median of ``--runs``, and the lowest), and the
bytes the driver received from and sent to the workers.  The driver receives
every value either way (the workflow may need it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import trio

from _common import report
from nalarc import load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._process import ProcessBackend
from nalarc.executor._statestore import StateStore

APP = '''
import nalarc

@nalarc.tool
def measure(data):
    return len(data)

@nalarc.tool
def source(size):
    return b"v" * size

@nalarc.tool
def step_a(data):
    return data

@nalarc.tool
def step_b(data):
    return data

@nalarc.workflow
def chain(size):
    a = source(size)
    b = step_a(a)
    c = step_b(b)
    d = step_a(c)
    e = step_b(d)
    return measure(e)
'''


def traffic(backend: ProcessBackend) -> tuple[int, int]:
    """Bytes the driver has received from and sent to its workers so far."""
    conns = [w.conn for w in backend.workers.values() if w.conn is not None]
    return sum(c.bytes_in for c in conns), sum(c.bytes_out for c in conns)


async def one(service: Service, backend: ProcessBackend, size: int) -> tuple[float, int, int]:
    received, sent = traffic(backend)
    started = time.perf_counter()
    assert await service.run("chain", {"size": size}, "bench") == size
    elapsed = time.perf_counter() - started
    received_after, sent_after = traffic(backend)
    return elapsed, received_after - received, sent_after - sent


async def measure_both(app: Any, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    rows = []
    async with open_service(app, StateStore(None), Placement(workers=2, push=True)) as pushed, \
            open_service(app, StateStore(None), Placement(workers=2, push=False)) as relayed:
        services = {"push": pushed, "relay": relayed}
        for service in services.values():
            assert isinstance(service.backend, ProcessBackend)
            hosts = {c.spec.name: c.worker.id for c in service.backend.instances.values()}
            assert hosts == {"measure": "w0", "source": "w1", "step_a": "w0", "step_b": "w1"}, hosts
            await one(service, service.backend, 1024)  # warm up
        for size in sizes:
            samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in services}
            for _ in range(runs):
                for name, service in services.items():
                    assert isinstance(service.backend, ProcessBackend)
                    samples[name].append(await one(service, service.backend, size))
            for name, got in samples.items():
                latencies = [s[0] * 1000 for s in got]
                rows.append({
                    "size": size, "mode": name,
                    "median ms": statistics.median(latencies), "best ms": min(latencies),
                    "driver in MB": statistics.median(s[1] for s in got) / 2**20,
                    "driver out MB": statistics.median(s[2] for s in got) / 2**20,
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="65536,1048576,16777216")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "push_bench.py").write_text(textwrap.dedent(APP), encoding="utf-8")
        app = load_app(Path(tmp) / "push_bench.py", out_dir=Path(tmp) / "build")
        rows = trio.run(measure_both, app, sizes, args.runs)
    report("push readiness: 5 cross-worker hops of one value", rows,
           ["size", "mode", "median ms", "best ms", "driver in MB", "driver out MB"], args.out,
           {"load average": os.getloadavg()})


if __name__ == "__main__":
    main()
