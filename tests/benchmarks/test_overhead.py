"""benchmarks/overhead.py at a small size, so the benchmark cannot rot: every path runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"
PATHS = [
    "raw socket (2 processes)",
    "trio echo (driver floor)",
    "trio wait_readable (least for trio)",
    "nalarc in-process",
    "nalarc worker process",
]


def test_every_local_path_is_measured_in_every_round(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--calls", "40", "--rounds", "2", "--batch", "200", "--no-ray", "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["path"]: row for row in report["rows"]}
    assert list(rows) == PATHS
    for row in rows.values():
        assert len(row["round medians us"]) == 2
        assert 0 < row["best round us"] <= row["median us"] <= row["p99 us"]
    assert rows["raw socket (2 processes)"]["x raw socket"] == 1.0
    for name in ("nalarc in-process", "nalarc worker process"):
        assert rows[name]["calls/s"] > 0
    assert report["same cpu"] is False
