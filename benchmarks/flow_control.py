"""Flow control: what the LLM limiter and concurrency keys cost per call, and 429s at 80/95/110% of a quota.

Run: ``python benchmarks/flow_control.py [--calls 300] [--bursts 12] [--out flow_control.json]``

Every part runs a served app on real worker processes (``Placement(workers=2)``)
against the simulated server in this process (``OPENAI_BASE_URL``), so every
LLM call crosses the SDK, loopback HTTP and, with a limiter, one booking round
trip to the driver.

* **overhead**: a tool makes ``--calls`` sequential ``chat`` calls to a zero-cost
  model and times each one in the worker: without flow control, with a limiter
  that never makes a call wait (a TPM limit far above the load), and with a
  session budget only.  ``book`` is the booking alone (``nalarc.llm._booking.book``:
  the round trip to the driver's limiter).
* **dispatch**: requests fanning out to 20 calls of a trivial tool, requests/s
  and µs per call, without concurrency keys, with a key limit governing another
  component only (the unused path), and with a per-session limit of 20 (taken
  and released on every call, never waited for).
* **quota**: the simulated server enforces a TPM quota Q (1200 tokens / 2 s,
  enforced over 0.25 s); workflows send bursts of 10 calls of 28 tokens at 80%,
  95% and 110% of Q on average, with the limiter (limit = Q) and without; 429s
  counted by the server (the SDK does not retry: ``NALARC_LLM_MAX_RETRIES=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NALARC_LLM_TIME_SCALE", "200")
os.environ["NALARC_LLM_MAX_RETRIES"] = "0"

import trio  # noqa: E402
from _common import machine  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from nalarc import ConcurrencyLimit, FlowConfig, ModelLimit, load_app  # noqa: E402
from nalarc.executor import LoadedApp, Placement, Service, open_service  # noqa: E402
from nalarc.executor._statestore import StateStore  # noqa: E402
from nalarc.llm import start_server  # noqa: E402

APP = '''
import os
import time
import nalarc
from nalarc.llm import LLMError, chat, simulate
from nalarc.llm._booking import book, settle

simulate("free", prefill_s_per_token=0.0, decode_s_per_token=0.0)
ASK = [{"role": "user", "content": "Summarize the bond market outlook for next quarter in two lines."}]

@nalarc.tool
def timed_calls(n, booking_only):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        if booking_only:
            settle(book("free", (ASK,), 8), 8)
        else:
            chat(ASK, model="free", max_tokens=8)
        times.append(time.perf_counter() - start)
    return times

@nalarc.tool
def noop(i):
    return i

@nalarc.tool
def other(i):
    return i

@nalarc.workflow
def overhead(n, booking_only=False):
    return timed_calls(n, booking_only)

@nalarc.workflow
def fan(k):
    return sum([noop(i) for i in range(k)])

@nalarc.tool
def ask(i, salt):
    question = f"question {i:03d} {salt}"[:74].ljust(74, ".")
    try:
        chat([{"role": "user", "content": question}], model="m", max_tokens=8)
    except LLMError as error:
        if error.status_code == 429:
            return 429
        raise
    return 200

@nalarc.workflow
def burst(k, salt):
    return [ask(i, salt) for i in range(k)]
'''

QUOTA = ModelLimit(tpm=1200, window=2.0, burst=0.25)
CALL_TOKENS = 28
BURST = 10


def _serve(app: LoadedApp, flow: FlowConfig, body: Any, **placement: Any) -> Any:
    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(workers=2, flow=flow, **placement)) as service:
            return await body(service)

    return trio.run(main)


def _ms_row(part: str, path: str, times: list[float], base: float | None) -> dict[str, Any]:
    us = sorted(t * 1e6 for t in times)
    p50 = statistics.median(us)
    return {"part": part, "path": path, "calls": len(us), "p50_us": p50, "p99_us": us[int(len(us) * 0.99) - 1],
            "added_p50_us": None if base is None else p50 - base}


def _overhead(app: LoadedApp, calls: int) -> list[dict[str, Any]]:
    unlimited = FlowConfig(models={"free": ModelLimit(tpm=10**9)})
    rows: list[dict[str, Any]] = []

    async def timed(service: Service, booking_only: bool = False) -> list[float]:
        await service.run("overhead", {"n": 20, "booking_only": booking_only})  # warm the connections
        result: list[float] = await service.run("overhead", {"n": calls, "booking_only": booking_only})
        return result

    base = _ms_row("overhead", "chat, no flow control", _serve(app, FlowConfig(), timed), None)
    rows.append(base)
    rows.append(_ms_row("overhead", "chat, TPM limiter (never waits)", _serve(app, unlimited, timed), base["p50_us"]))
    rows.append(_ms_row("overhead", "chat, session budget only",
                        _serve(app, FlowConfig(session_token_budget=10**9), timed), base["p50_us"]))

    async def booking(service: Service) -> list[float]:
        return await timed(service, booking_only=True)

    rows.append(_ms_row("overhead", "book + settle alone (round trip)", _serve(app, unlimited, booking), None))
    return rows


def _dispatch(app: LoadedApp, requests: int) -> list[dict[str, Any]]:
    fan_out = 20
    configs = {
        "no concurrency keys": FlowConfig(),
        "a key limit on another component": FlowConfig(concurrency=(ConcurrencyLimit(1, "session", ("other",)),)),
        "per-session limit 20 on noop": FlowConfig(concurrency=(ConcurrencyLimit(fan_out, "session", ("noop",)),)),
    }
    rows = []
    for path, flow in configs.items():
        async def body(service: Service) -> float:
            for _ in range(20):
                await service.run("fan", {"k": fan_out})
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for i in range(requests):
                    nursery.start_soon(service.run, "fan", {"k": fan_out}, f"s{i % 8}")
            return time.perf_counter() - start

        # best of 3: the machine is shared
        elapsed = min(_serve(app, flow, body) for _ in range(3))
        rows.append({"part": "dispatch", "path": path, "calls": requests * fan_out,
                     "requests/s": requests / elapsed, "us/call": elapsed / (requests * fan_out) * 1e6})
    return rows


def _keys_micro(app: LoadedApp, calls: int = 20000) -> list[dict[str, Any]]:
    """The driver-side work per call, without the noise of a shared machine's end-to-end runs: the check
    a call of an ungoverned component pays, and taking + releasing a per-session key."""
    from nalarc._api import component_spec
    from nalarc.executor._concurrency import ConcurrencyKeys
    from nalarc.executor._instance import QueuedCall
    from nalarc.runtime.lowlevel import CallRecord

    noop = app.module.noop
    spec = component_spec(noop)
    assert spec is not None
    keys = ConcurrencyKeys((ConcurrencyLimit(20, "session", ("noop",)), ConcurrencyLimit(1, "session", ("other",))))

    async def measure() -> tuple[float, float]:
        entries = [QueuedCall(CallRecord(spec, noop, None, (i,), {}, f"s{i % 8}", "r", None), 0) for i in range(calls)]
        dispatched: list[QueuedCall] = []
        start = time.perf_counter()
        for entry in entries:
            keys.governs("other-component")
        check = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        for entry in entries:
            keys.submit(entry, dispatched.append)
            keys.release(entry, dispatched.append)
        return check, (time.perf_counter() - start) / calls

    check, keyed = trio.run(measure)
    return [{"part": "dispatch", "path": "driver: governs() check, ungoverned component", "calls": calls,
             "us/call": check * 1e6},
            {"part": "dispatch", "path": "driver: take + release a session key", "calls": calls,
             "us/call": keyed * 1e6}]


def _quota(app: LoadedApp, bursts: int) -> list[dict[str, Any]]:
    rows = []
    for share in (0.80, 0.95, 1.10):
        for limited in (False, True):
            server = start_server(quotas={"m": QUOTA})
            os.environ["OPENAI_BASE_URL"] = server.url
            period = BURST * CALL_TOKENS / (share * QUOTA.tpm / QUOTA.window)  # type: ignore[operator]

            async def body(service: Service) -> tuple[list[int], float]:
                statuses: list[int] = []
                start = time.monotonic()

                async def one(n: int) -> None:
                    statuses.extend(await service.run("burst", {"k": BURST, "salt": f"b{n}"}, session=f"b{n}"))

                async with trio.open_nursery() as nursery:
                    for n in range(bursts):
                        nursery.start_soon(one, n)
                        await trio.sleep(period)
                return statuses, time.monotonic() - start

            flow = FlowConfig(models={"m": QUOTA}) if limited else FlowConfig()
            try:
                statuses, elapsed = _serve(app, flow, body, instances={"ask": 2})
            finally:
                server.close()
                del os.environ["OPENAI_BASE_URL"]
            offered = bursts * (BURST * CALL_TOKENS) / (bursts * period)
            rows.append({"part": "quota", "path": f"{share:.0%} of Q, {'limiter' if limited else 'no limiter'}",
                         "calls": len(statuses), "429s": server.quotas.rejected.get("m", 0),
                         "offered_tok/s": offered, "served_tok/s": statuses.count(200) * CALL_TOKENS / elapsed,
                         "seconds": elapsed})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="sequential LLM calls per overhead row")
    parser.add_argument("--requests", type=int, default=100, help="requests per dispatch row")
    parser.add_argument("--bursts", type=int, default=12, help="bursts of 10 calls per quota row")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="nalarc-flow-bench-"))
    (directory / "flow_bench.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(directory / "flow_bench.py", out_dir=directory / "build")
    free = start_server()
    os.environ["OPENAI_BASE_URL"] = free.url
    try:
        rows = _overhead(app, args.calls) + _dispatch(app, args.requests) + _keys_micro(app)
    finally:
        free.close()
        del os.environ["OPENAI_BASE_URL"]
    rows += _quota(app, args.bursts)
    _tables(rows)
    data = {"benchmark": "flow_control", "machine": machine(), "rows": rows,
            "quota": {"tpm": QUOTA.tpm, "window_s": QUOTA.window, "burst_s": QUOTA.burst, "call_tokens": CALL_TOKENS}}
    text = json.dumps(data, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


COLUMNS = {
    "overhead": ["path", "calls", "p50_us", "p99_us", "added_p50_us"],
    "dispatch": ["path", "calls", "requests/s", "us/call"],
    "quota": ["path", "calls", "429s", "offered_tok/s", "served_tok/s", "seconds"],
}


def _tables(rows: list[dict[str, Any]]) -> None:
    """One rich table per part, on stderr (the JSON goes to stdout)."""
    console = Console(stderr=True)
    for part, columns in COLUMNS.items():
        table = Table(title=f"flow control: {part}")
        for column in columns:
            table.add_column(column, justify="left" if column == "path" else "right")
        for row in rows:
            if row["part"] == part:
                table.add_row(*(_fmt(row.get(c)) for c in columns))
        console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return "" if value is None else str(value)


if __name__ == "__main__":
    main()
