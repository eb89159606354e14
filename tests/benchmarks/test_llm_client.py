"""benchmarks/llm_client.py at a small size, so the benchmark cannot rot: every path runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "llm_client.py"


def test_every_path_is_measured_against_the_in_process_baseline(tmp_path: Path) -> None:
    out = tmp_path / "llm_client.json"
    subprocess.run([sys.executable, str(SCRIPT), "--calls", "40", "--threads", "4", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    rows = {row["path"]: row for row in json.loads(out.read_text(encoding="utf-8"))["rows"]}
    assert list(rows) == ["in-process (old)", "chat", "chat full=True", "chat stream=True", "achat (trio)",
                          "in-process, 4 threads", "chat, 4 threads"]
    for row in rows.values():
        assert row["calls"] == 40 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert rows["in-process (old)"]["added_p50_ms"] is None
    assert rows["chat"]["added_p50_ms"] == rows["chat"]["p50_ms"] - rows["in-process (old)"]["p50_ms"]
