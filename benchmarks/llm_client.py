"""What a simulated LLM call costs on top of the simulated GPU time: the SDK + loopback HTTP vs in-process.

Run: ``python benchmarks/llm_client.py [--calls 500] [--threads 8] [--out llm_client.json]``

A model with zero prefill and decode cost makes every call pure overhead.
``in-process`` is what ``nalarc.llm.chat`` did before it went through the
``openai`` SDK (the prompt, the engine lookup, ``engine.generate``);
``chat`` / ``chat full=True`` / ``chat stream=True`` / ``achat`` are today's
calls against the embedded loopback server.  ``threads`` runs the same calls
from several threads at once (the per-call latency under contention on this
machine's cores).  Milliseconds per call.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from _common import report

from nalarc.llm import _client, achat, chat, engine_for, simulate
from nalarc.llm._server import prompt_of

MODEL = "overhead-only"
MESSAGES = [{"role": "system", "content": "You are a financial analyst."},
            {"role": "user", "content": "Summarize the bond market outlook for next quarter in two lines."}]


def _in_process() -> None:
    prompt = prompt_of(MESSAGES)
    engine_for(MODEL).generate(prompt, "bench", f"{MODEL}|{prompt}")


def _chat() -> None:
    chat(MESSAGES, model=MODEL)


def _chat_full() -> None:
    chat(MESSAGES, model=MODEL, full=True)


def _chat_stream() -> None:
    for _ in chat(MESSAGES, model=MODEL, stream=True):
        pass


def _timed(call: Callable[[], None], calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _threaded(call: Callable[[], None], calls: int, threads: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = _timed(call, calls // threads)
        with lock:
            times.extend(mine)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return times


def _achat_times(calls: int) -> list[float]:
    async def run() -> list[float]:
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await achat(MESSAGES, model=MODEL)
            times.append(time.perf_counter() - started)
        return times

    return trio.run(run)


def _row(name: str, times: list[float], base: float | None) -> dict[str, Any]:
    ms = sorted(t * 1000 for t in times)
    p50 = statistics.median(ms)
    return {"path": name, "calls": len(ms), "p50_ms": p50, "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "mean_ms": statistics.fmean(ms), "added_p50_ms": None if base is None else p50 - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    simulate(MODEL, prefill_s_per_token=0.0, decode_s_per_token=0.0)
    _client.chat(MESSAGES, model=MODEL)  # start the server, import the SDK, open a connection
    rows = []
    base = _row("in-process (old)", _timed(_in_process, args.calls), None)
    rows.append(base)
    for name, call in (("chat", _chat), ("chat full=True", _chat_full), ("chat stream=True", _chat_stream)):
        rows.append(_row(name, _timed(call, args.calls), base["p50_ms"]))
    rows.append(_row("achat (trio)", _achat_times(args.calls), base["p50_ms"]))
    rows.append(_row(f"in-process, {args.threads} threads", _threaded(_in_process, args.calls, args.threads), None))
    rows.append(_row(f"chat, {args.threads} threads", _threaded(_chat, args.calls, args.threads), rows[-1]["p50_ms"]))
    report("nalarc.llm per-call overhead (ms, zero-cost model)", rows,
           ["path", "calls", "p50_ms", "p99_ms", "mean_ms", "added_p50_ms"], args.out)


if __name__ == "__main__":
    main()
