"""Shared output for benchmark scripts: a JSON report and a rich table."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def machine() -> dict[str, Any]:
    import os

    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}


def report(name: str, rows: list[dict[str, Any]], columns: list[str], out: Path | None, extra: dict[str, Any] | None = None) -> None:
    """Print ``rows`` as a table on stderr and as JSON on stdout (and to ``out``)."""
    table = Table(title=name)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(_fmt(row.get(c)) for c in columns))
    Console(stderr=True).print(table)
    data = {"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}
    text = json.dumps(data, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")


def summarize(name: str, rounds: list[list[float]], throughput: float | None = None) -> dict[str, Any]:
    """Latency rounds (seconds per call) as one row: medians, the best round, p99, in µs."""
    medians = [statistics.median(r) * 1e6 for r in rounds]
    every = sorted(s * 1e6 for r in rounds for s in r)
    return {
        "path": name,
        "median us": statistics.median(medians),
        "best round us": min(medians),
        "p99 us": every[max(0, int(len(every) * 0.99) - 1)],
        "calls/s": throughput,
        "round medians us": [round(m, 1) for m in medians],
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
