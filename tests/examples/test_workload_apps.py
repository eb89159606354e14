"""The paper's three workloads in examples/: compiled == plain, their @workload traces, and the CLI load."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nalarc
from nalarc import load_app
from nalarc._state import _LOCAL_STORE
from nalarc.executor import Placement, run_requests
from nalarc.serve import resolve_arrivals, workload_arrivals

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: app -> requests (workflow, inputs, session) that exercise it, follow-ups included
REQUESTS: dict[str, list[tuple[str, dict[str, Any], str]]] = {
    "financial_analyst": [
        ("advise", {"question": "Should I rebalance toward NVDA and XOM?", "tickers": ["NVDA", "XOM"]}, "c1"),
        ("advise", {"question": "And if rates rise?", "tickers": ["NVDA", "XOM"]}, "c1"),
        ("advise", {"question": "Outlook for KO?", "tickers": ["KO", "JNJ", "AAPL"]}, "c2"),
    ],
    "router": [
        ("route", {"query": "Plan a weekend in Lisbon."}, "u1"),
        ("route", {"query": "Write a python function that merges two sorted lists."}, "u2"),
        ("route", {"query": "Fix the bug in my regex for email addresses."}, "u3"),
    ],
    "software_engineering": [
        ("solve", {"task": "add retries to the parser #1"}, "j1"),
        ("solve", {"task": "fix the race in the cache #2"}, "j2"),
        ("solve", {"task": "speed up the exporter #3"}, "j3"),
    ],
}


@pytest.fixture(autouse=True)
def fast_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_TIME_SCALE", "1000")  # workers inherit it


def plain(name: str) -> list[Any]:
    spec = importlib.util.spec_from_file_location(f"plain_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _LOCAL_STORE.clear()  # plain managed state lives in this process: start empty, as the runtime does
    out = []
    for workflow, inputs, session in REQUESTS[name]:
        with nalarc.session(session):
            out.append(getattr(module, workflow)(**inputs))
    return out


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_compiled_equals_plain(name: str, workers: int, tmp_path: Path) -> None:
    expected = json.loads(json.dumps(plain(name)))
    app = load_app(EXAMPLES / f"{name}.py", out_dir=tmp_path / "build")
    placement = Placement(workers=workers, default_instances=2) if workers else None
    outcomes = run_requests(app, list(REQUESTS[name]), placement=placement)
    assert [json.loads(json.dumps(o.unwrap())) for o in outcomes] == expected
    if name == "financial_analyst":
        assert [o.value["turn"] for o in outcomes] == [1, 2, 1]  # the follow-up saw the session's first turn


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_workload_generators(name: str, tmp_path: Path) -> None:
    app = load_app(EXAMPLES / f"{name}.py", out_dir=tmp_path / "build")
    arrivals = resolve_arrivals(app, workload_arrivals(app, 5.0, 20.0, seed=3))
    assert arrivals == resolve_arrivals(app, workload_arrivals(app, 5.0, 20.0, seed=3))
    assert [a.at for a in arrivals] == sorted(a.at for a in arrivals) and arrivals[-1].at < 20.0
    first_requests = [a for a in arrivals if a.think is None]
    assert 50 <= len(arrivals) <= 160 and first_requests
    if name == "financial_analyst":  # sessions with follow-ups after think time
        follow_ups = [a for a in arrivals if a.think is not None]
        assert follow_ups and all(0.5 <= a.think <= 2.0 for a in follow_ups)
        assert len({a.session for a in follow_ups}) < len(follow_ups)
    if name == "router":  # the mix shifts in phases of 95%
        def code_share(low: float, high: float) -> float:
            window = [a for a in arrivals if low <= a.at < high]
            return sum("python" in a.inputs["query"].lower() or "sql" in a.inputs["query"].lower()
                       or "regex" in a.inputs["query"].lower() or "test" in a.inputs["query"].lower()
                       for a in window) / len(window)

        assert code_share(0, 10) < 0.3 and code_share(10, 20) > 0.7


def test_cli_runs_the_workload_and_prints_the_latency_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nalarc", "run", str(EXAMPLES / "financial_analyst.py"), "--rate", "4",
         "--duration", "2", "--state", str(tmp_path / "state.db"), "--report", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    for word in ("advise", "p50 ms", "p95 ms", "p99 ms"):
        assert word in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["errors"] == 0 and report["summary"]["ok"] >= 3
    sessions = [r["session"] for r in report["requests"]]
    assert len(set(sessions)) < len(sessions)  # follow-ups came in the same sessions
