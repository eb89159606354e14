"""benchmarks/telemetry.py at a small size, so the benchmark cannot rot: every mode runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "telemetry.py"


def test_every_mode_is_measured_and_only_the_sdk_exports(tmp_path: Path) -> None:
    out = tmp_path / "telemetry.json"
    subprocess.run([sys.executable, str(SCRIPT), "--calls", "50", "--rounds", "1", "--repeats", "1",
                    "--workers", "0", "--out", str(out)], check=True, capture_output=True, timeout=300)
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["telemetry"]: row for row in report["rows"]}
    assert list(rows) == ["off", "api", "sdk"]
    assert all(row["us per call"] > 0 for row in rows.values())
    assert rows["off"]["vs off us"] == 0
    # one request of 50 calls per round, warm-up included: 2 x (1 + 50) spans, and none without the SDK
    assert [rows[m]["spans exported (one process)"] for m in ("off", "api", "sdk")] == [0, 0, 2 * 51]
    assert report["metrics_observe_call_us"] > 0
