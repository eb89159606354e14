"""What run event streams cost: the journal write per event, and SSE end to end.

Run: ``python benchmarks/streaming.py [--events 20000] [--stream-events 3000] [--rounds 5] [--dir DIR] [--out FILE.json]``

Table 1 times ``EventStreams.append`` per event (what the server does for every
``nalarc.stream`` call before any client is sent the event: the id, the SQLite
insert, waking the readers), on a journal file in WAL mode with
``synchronous=NORMAL`` (the default) and ``FULL``, and in memory, with a
40-byte token event.  It also times ``Journal.add_events`` with 16 events per
transaction, to show what batching would buy.

Table 2 times whole requests against a real server on loopback (in this
process; the tool in the driver, or on one of 2 worker processes that relay each
event to the driver): a workflow whose tool emits
``--stream-events`` token events, requested with plain ``POST`` (events journaled,
nobody reading them) and with ``POST .../stream`` (journaled and sent over SSE to an
httpx client that parses every event), against the same workflow emitting nothing.
The per-event figures are the differences divided by the number of events.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import report

from nalarc import load_app
from nalarc.executor import Placement, open_service
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve
from nalarc.serve._journal import Journal, Sync
from nalarc.serve._stream import EventStreams

TOKEN = '{"text":"token-0000 of a streamed reply"}'

APP = '''
import nalarc

@nalarc.tool(idempotent=True)
def speak(count):
    for i in range(count):
        nalarc.stream({"text": f"token-{i:04d} of a streamed reply"}, event="token")
    return count

@nalarc.workflow
def talk(count):
    return {"said": speak(count)}
'''


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure_appends(journal: Journal, events: int) -> dict[str, Any]:
    journal.accept("bench", "talk", {}, "default", None)
    streams = EventStreams(journal)
    us = []
    for _ in range(events):
        start = time.perf_counter_ns()
        streams.append("bench", "token", TOKEN)
        us.append((time.perf_counter_ns() - start) / 1000)
    batch, batched = 16, []
    journal.accept("batched", "talk", {}, "default", None)
    for first in range(1, events + 1, batch):
        rows = [(first + i, "token", TOKEN) for i in range(batch)]
        start = time.perf_counter_ns()
        journal.add_events("batched", rows)
        batched.append((time.perf_counter_ns() - start) / 1000 / batch)
    return {"n": events, "p50": percentile(us, 0.5), "p99": percentile(us, 0.99), "mean": statistics.fmean(us),
            "max": max(us), "batched16_mean": statistics.fmean(batched)}


def measure_end_to_end(directory: Path, events: int, rounds: int, workers: int) -> list[dict[str, Any]]:
    app_file = directory / "stream_bench_app.py"
    app_file.write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(app_file, out_dir=directory / f"build-{workers}")
    times: dict[str, list[float]] = {"no events": [], "events, POST": [], "events, POST /stream (SSE)": []}

    async def main() -> None:
        store, journal = StateStore(None), Journal(directory / f"e2e-{workers}.requests.db")
        try:
            async with open_service(app, store, Placement(workers=workers)) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0, journal=journal))
                async with httpx.AsyncClient(base_url=urls[0], timeout=120) as client:
                    for _ in range(rounds):
                        times["no events"].append(await _post(client, 0))
                        times["events, POST"].append(await _post(client, events))
                        times["events, POST /stream (SSE)"].append(await _stream(client, events))
                nursery.cancel_scope.cancel()
        finally:
            store.close()
            journal.close()

    trio.run(main)
    base = statistics.median(times["no events"])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        count = events if name != "no events" else 0
        rows.append({"tool on": f"{workers} workers" if workers else "driver (thread)", "request": name,
                     "events": count, "rounds": rounds, "median_ms": median * 1e3,
                     "us_per_event": (median - base) / events * 1e6 if count else None,
                     "events_per_s": count / median if count else None})
    return rows


async def _post(client: httpx.AsyncClient, count: int) -> float:
    start = time.perf_counter()
    answer = await client.post("/v1/workflows/talk", json={"count": count})
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - start


async def _stream(client: httpx.AsyncClient, count: int) -> float:
    start = time.perf_counter()
    received = 0
    async with client.stream("POST", "/v1/workflows/talk/stream", json={"count": count}) as response:
        async for line in response.aiter_lines():
            received += line.startswith("id: ")
    elapsed = time.perf_counter() - start
    assert received == count + 1, received  # the tokens and the result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stream-events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="nalarc-bench-stream-"))
    directory.mkdir(parents=True, exist_ok=True)
    modes: list[tuple[str, Path | None, Sync]] = [
        ("WAL NORMAL (default)", directory / "normal.db", "normal"),
        ("WAL FULL", directory / "full.db", "full"),
        ("memory", None, "normal"),
    ]
    rows = []
    for name, path, sync in modes:
        journal = Journal(path, sync=sync)
        try:
            rows.append({"mode": name, **measure_appends(journal, args.events)})
        finally:
            journal.close()
    e2e = [row for workers in (0, 2) for row in measure_end_to_end(directory, args.stream_events, args.rounds, workers)]
    if args.dir is None:
        shutil.rmtree(directory, ignore_errors=True)
    report("SSE end to end (loopback), per request", e2e,
           ["tool on", "request", "events", "rounds", "median_ms", "us_per_event", "events_per_s"], None)
    report("event journal cost per event, us (EventStreams.append; batched16: add_events of 16)", rows,
           ["mode", "n", "p50", "p99", "mean", "max", "batched16_mean"], args.out,
           {"event_bytes": len(TOKEN), "python": sys.version.split()[0]})


if __name__ == "__main__":
    main()
