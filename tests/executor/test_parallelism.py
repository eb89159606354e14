"""Component calls overlap: structural checks (who ran while whom), not timings.

Latency against the critical path is measured in benchmarks/parallelism.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from nalarc import load_app
from nalarc.executor import InProcessRunner

APP = '''
import time
import nalarc

LOG = []

def record(name, seconds):
    LOG.append(("start", name, time.monotonic()))
    time.sleep(seconds)
    LOG.append(("end", name, time.monotonic()))

@nalarc.tool
def fetch(i):
    record(f"fetch{i}", 0.15)
    return i * 10

@nalarc.tool
def combine(a, b):
    record(f"combine{a}-{b}", 0.05)
    return a + b

@nalarc.workflow
def fan_out(n):
    parts = [fetch(i) for i in range(n)]
    return sum(parts)

@nalarc.workflow
def diamond():
    a = fetch(1)
    b = fetch(2)
    c = combine(a, b)
    d = fetch(3)
    return [c, d]

def collect(*xs):
    return list(xs)

@nalarc.workflow
def star_fan_out(n):
    return collect(*(fetch(i) for i in range(n)))

@nalarc.workflow
def log():
    return [[kind, name] for kind, name, _ in LOG]
'''


def run(tmp_path: Path, workflow: str, **kwargs: Any) -> tuple[Any, list[tuple[str, str, float]]]:
    (tmp_path / "par_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "par_app.py", out_dir=tmp_path / "build")
    app.module.LOG.clear()
    result = InProcessRunner(app).run(workflow, kwargs)
    return result, list(app.module.LOG)


def intervals(log: list[tuple[str, str, float]]) -> dict[str, tuple[float, float]]:
    starts = {name: t for kind, name, t in log if kind == "start"}
    return {name: (starts[name], t) for kind, name, t in log if kind == "end"}


def test_fan_out_calls_all_run_at_once(tmp_path: Path) -> None:
    result, log = run(tmp_path, "fan_out", n=6)
    assert result == sum(i * 10 for i in range(6))
    spans = intervals(log)
    assert len(spans) == 6
    # Every call started before any call finished: all six overlapped.
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values())


def test_dependencies_wait_and_independent_calls_do_not(tmp_path: Path) -> None:
    result, log = run(tmp_path, "diamond")
    assert result == [30, 30]
    spans = intervals(log)
    combine_start = spans["combine10-20"][0]
    assert combine_start >= spans["fetch1"][1] and combine_start >= spans["fetch2"][1]
    # fetch3 is independent of combine's inputs: it ran alongside fetch1/fetch2.
    assert spans["fetch3"][0] < spans["fetch1"][1]


def test_calls_in_a_star_unpacked_generator_expression_all_run_at_once(tmp_path: Path) -> None:
    """``f(*(tool(i) for i in ...))``: the unpacking runs on the event loop thread; its calls
    start as futures (they used to run inline there, one after the other)."""
    result, log = run(tmp_path, "star_fan_out", n=4)
    assert result == [0, 10, 20, 30]
    spans = intervals(log)
    assert len(spans) == 4
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values())
