"""benchmarks/paper_eval.py --quick: nalarc's tail latency beats the sticky-session baseline (financial analyst).

The quick mode runs the financial-analyst workload at one rate, under nalarc's
default policies and under sticky sessions with FCFS (the AutoGen/CrewAI-like
baseline), on real worker processes and simulated GPUs; it must finish within
a minute so the evaluation cannot rot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_evaluation_nalarc_beats_sticky_p99(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_eval.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["system"]: row for row in report["rows"]}
    assert set(rows) == {"nalarc", "sticky-fcfs"}
    for row in rows.values():
        assert row["workload"] == "financial" and row["errors"] == 0 and row["requests"] >= 50
        assert 0 < row["p50"] <= row["p95"] <= row["p99"]
    assert rows["nalarc"]["p99"] < rows["sticky-fcfs"]["p99"], (rows["nalarc"]["p99"], rows["sticky-fcfs"]["p99"])
    reduction = report["comparisons"]["financial_vs_sticky"]["p99"]
    assert list(reduction.values())[0] > 0
    assert report["seconds"] < 60, f"--quick took {report['seconds']:.0f} s (wall {elapsed:.0f} s)"
