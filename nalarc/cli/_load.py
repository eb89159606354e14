"""``nalarc run --load``'s rendering: a rich progress display and the report table.

The load generator (:mod:`nalarc.serve`) only reports numbers; drawing them is the CLI's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..serve import LoadProgress


@contextlib.contextmanager
def progress_display(console: Console, total: int) -> Iterator[Callable[[LoadProgress], None]]:
    """A live display of a load run: yields the callback :func:`~nalarc.serve.run_load` takes."""
    display = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.fields[status]}"), console=console, transient=False)
    sent = display.add_task("sent", total=total, status="")
    done = display.add_task("done", total=total, status="")

    def update(progress: LoadProgress) -> None:
        display.update(sent, completed=progress.sent)
        display.update(done, completed=progress.done, status=f"in flight {progress.in_flight}  errors {progress.errors}")

    with display:
        yield update


def report_table(report: dict[str, Any], title: str = "nalarc load") -> Table:
    """A rich table: one row per workflow (and a total row when there are several)."""
    table = Table(title=title)
    for column in ["workflow", "count", "ok", "errors", "mean ms", "p50 ms", "p95 ms", "p99 ms"]:
        table.add_column(column, justify="left" if column == "workflow" else "right")

    def row(name: str, s: dict[str, Any]) -> None:
        ms = [("-" if s[k] is None else f"{s[k] * 1000:.1f}") for k in ("mean", "p50", "p95", "p99")]
        table.add_row(name, str(s["count"]), str(s["ok"]), str(s["errors"]), *ms)

    for name, stats in report["by_workflow"].items():
        row(name, stats)
    if len(report["by_workflow"]) != 1:
        row("total", report["summary"])
    s = report["summary"]
    errors = ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "none"
    table.caption = (f"{s['duration']:.2f} s, {s['throughput']:.1f} ok req/s, "
                     f"max concurrency {s['max_concurrency']}; errors: {errors}")
    return table
