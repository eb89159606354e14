"""benchmarks/build_compat.py on a few standard-library units, so the sweep cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "build_compat.py"
OUTCOMES = {"built", "changed", "failed", "crashed"}


def test_sweep_reports_every_unit_and_module(tmp_path: Path) -> None:
    out = tmp_path / "compat.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "json", "textwrap", "csv", "logging", "--no-pypi", "--out", str(out)],
        check=True, capture_output=True, timeout=300, cwd=SCRIPT.parent,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    (row,) = report["rows"]
    units = {u["unit"]: u for u in report["units"]}
    assert sorted(units) == ["csv", "json", "logging", "textwrap"]
    assert row["units"] == 4 and row["modules"] == sum(max(1, len(u["modules"])) for u in units.values())
    assert sum(row[o] for o in OUTCOMES) == row["modules"]
    # json is a package built in place: every module of it, byte-identical.
    assert units["json"]["kind"] == "package" and units["json"]["outcome"] == "built"
    assert set(units["json"]["modules"]) == {"json", "json.decoder", "json.encoder", "json.scanner", "json.tool"}
    assert set(units["json"]["modules"].values()) == {"built"}
    assert units["textwrap"]["outcome"] == "built" and units["textwrap"]["lines"] > 400
    for unit in units.values():
        assert unit["outcome"] in OUTCOMES
        assert set(unit["modules"].values()) <= OUTCOMES
        if unit["outcome"] in {"failed", "crashed"}:
            assert unit["detail"], unit  # the first line of the error
    groups = report["failures"]
    assert sum(g["modules"] for g in groups) == row["modules"] - row["built"]
    assert "site-packages" in report["skipped"] and "lib-dynload" in report["skipped"]
    assert row["lines/s"] > 0
