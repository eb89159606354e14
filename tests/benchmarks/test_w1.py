"""benchmarks/w1_concurrency.py at a tiny size (2 concurrent requests, 0.02 s calls), so it cannot rot.

Real servers over real HTTP: nalarc with default flags and sized by hand, plain
asyncio, and LangGraph when it is installed (the ``bench`` extra; otherwise the
report must say it was skipped and why).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "w1_concurrency.py"
DELAY, FANOUT, REPEAT, LEVELS = 0.02, 3, 2, (1, 2)
CRITICAL = 3 * DELAY
#: The components' calls per request, as the trace names them.
CALLS_PER_REQUEST = {"plan": 1, "Searcher.search": FANOUT, "fetch": 1, "combine": 1}


def has_langgraph() -> bool:
    try:
        return importlib.util.find_spec("langgraph.graph") is not None
    except ModuleNotFoundError:  # no ``langgraph`` at all
        return False


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("w1")
    out = tmp / "w1.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--concurrency", *map(str, LEVELS), "--repeat", str(REPEAT),
         "--delay", str(DELAY), "--fanout", str(FANOUT), "--trace", str(tmp / "traces"), "--out", str(out),
         "--systems", "nalarc", "nalarc-sized", "asyncio", "langgraph"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert json.loads(proc.stdout) == data  # the JSON goes to stdout too
    return data


def test_every_system_and_level_is_measured(report: dict[str, Any]) -> None:
    systems = ["nalarc", "nalarc-sized", "asyncio"] + (["langgraph"] if has_langgraph() else [])
    assert [(r["system"], r["concurrency"]) for r in report["rows"]] == [(s, n) for s in systems for n in LEVELS]
    if not has_langgraph():
        assert "langgraph" in report["skipped"] and "pip install" in report["skipped"]["langgraph"]
    assert report["errors"] == {s: 0 for s in systems}  # every answer equals plain Python's
    assert report["critical_path_s"] == pytest.approx(CRITICAL)
    assert report["fanout"] == FANOUT and report["repeat"] == REPEAT
    assert len(report["load_average"]["before"]) == 3


def test_figures_are_consistent(report: dict[str, Any]) -> None:
    for row in report["rows"]:
        assert row["rounds"] == REPEAT
        # three sleeps one after another: nothing can answer sooner
        assert CRITICAL <= row["makespan_min_s"] <= row["makespan_s"] <= row["makespan_max_s"] < 10, row
        assert row["makespan_vs_critical"] == pytest.approx(row["makespan_s"] / CRITICAL, abs=3e-3)  # both rounded
        assert CRITICAL <= row["latency_p50_s"] <= row["latency_max_s"] <= row["makespan_max_s"] + 1e-3, row
        assert 0 < row["http_floor_ms"] < row["makespan_s"] * 1000
        assert row["server_cpu_s"] >= 0 and row["children_cpu_s"] >= 0
        assert ("cold_makespan_s" in row) == (row["concurrency"] == max(LEVELS))
    single = next(r for r in report["rows"] if r["system"] == "nalarc" and r["concurrency"] == 1)
    assert single["target_s"] == pytest.approx(1.05 * CRITICAL, abs=1e-4)
    assert single["meets_target"] == (single["makespan_s"] <= single["target_s"])
    assert not any("target" in r for r in report["rows"] if r["system"] != "nalarc")


def test_trace_summary_counts_every_measured_call(report: dict[str, Any]) -> None:
    assert set(report["trace"]) == {"nalarc", "nalarc-sized"}
    for system, by_level in report["trace"].items():
        for n in LEVELS:
            components = by_level[str(n)]
            assert {c: v["calls"] for c, v in components.items()} == {
                c: REPEAT * n * per for c, per in CALLS_PER_REQUEST.items()}, system
            for name, summary in components.items():
                assert 1 <= summary["instances"] <= 8, (system, name)  # max_instances=8
                assert summary["calls_per_instance_min"] <= summary["calls_per_instance_max"] <= summary["calls"]
                assert summary["queue_ms"] >= 0
                assert summary["beyond_sleep_ms"] > -0.5, (system, name)  # a call cannot beat its own sleep


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("w1_concurrency", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_wrong_answer_is_caught(bench: ModuleType) -> None:
    load = bench.Workload(k=2, delay=0.0)
    right = bench.plain_w1()("question s1", 2, 0.0)
    assert load.correct("s1", right)
    assert not load.correct("s1", {**right, "sources": right["sources"] + 1})
    assert not load.correct("s1", None)


def test_py_spy_raw_output_is_split_by_process(bench: ModuleType, tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    driver = 'process 10:"python -m nalarc run app.py --serve"'
    worker = 'process 11:"python -m nalarc.worker /tmp/x/driver.sock w0"'
    raw.write_text(
        f"{driver};main (nalarc/cli/_main.py:1);unrolled_run (trio/_core/_run.py:2742) 30\n"
        f"{driver};main (nalarc/cli/_main.py:1);send_run (nalarc/executor/_backend.py:9) 20\n"
        f"{driver};{worker};follow (nalarc/worker/_main.py:334) 7\n", encoding="utf-8")
    summary = bench.spy_summary(raw, rate=100)
    assert summary["gil_seconds"] == {"driver": 0.5, "w0": 0.07}
    assert summary["driver_top_self"] == [("unrolled_run (_run.py:2742)", 0.3), ("send_run (_backend.py:9)", 0.2)]
