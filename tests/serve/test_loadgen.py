"""The open-loop load generator against a real in-process Service (and the CLI)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
from rich.console import Console

from nalarc import NalarcError, load_app
from nalarc.executor import LoadedApp, Placement, open_service
from nalarc.serve import (
    Arrival,
    percentile,
    poisson_arrivals,
    read_trace,
    resolve_arrivals,
    run_load,
    write_report,
)
from nalarc.executor._statestore import StateStore
from nalarc.cli._load import progress_display, report_table

APP = '''
import time
import nalarc

@nalarc.tool
def fetch(i, delay):
    time.sleep(delay)
    return i

@nalarc.tool
def nap(seconds):
    time.sleep(seconds)
    return seconds

@nalarc.workflow
def fan_out(n, delay=0.01):
    return sum([fetch(i, delay) for i in range(n)])

@nalarc.workflow
def slow(seconds):
    return nap(seconds)

@nalarc.workflow
def boom(x):
    raise ValueError(f"bad {x}")
'''


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loadgen") / "load_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


@pytest.fixture
def app(app_file: Path, tmp_path: Path) -> LoadedApp:
    return load_app(app_file, out_dir=tmp_path / "build")


def load(app: LoadedApp, arrivals: list[Arrival], workers: int = 0) -> tuple[dict[str, Any], str]:
    """Run the load with a live display into a buffer; return the report and what was shown."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)

    async def main() -> dict[str, Any]:
        async with open_service(app, StateStore(None), Placement(workers=workers)) as service:
            with progress_display(console, len(arrivals)) as on_progress:
                return await run_load(service, resolve_arrivals(app, arrivals), on_progress=on_progress)

    return trio.run(main), buffer.getvalue()


@pytest.mark.parametrize("workers", [0, 2])
def test_poisson_load_report(app: LoadedApp, workers: int) -> None:
    arrivals = poisson_arrivals(20, 2.0, "fan_out", {"n": 3}, seed=7, session="user{i}")
    report, shown = load(app, arrivals, workers)
    summary, records = report["summary"], report["requests"]
    assert set(summary) >= {"count", "ok", "errors", "mean", "p50", "p95", "p99", "duration", "throughput",
                            "max_concurrency"}
    assert summary["count"] == len(arrivals) == len(records) and 20 <= len(arrivals) <= 70
    assert summary["ok"] == summary["count"] and summary["errors"] == 0 and report["errors"] == {}
    assert 0 < summary["p50"] <= summary["p95"] <= summary["p99"] <= summary["max"]
    assert summary["duration"] >= arrivals[-1].at
    assert list(report["by_workflow"]) == ["fan_out"]
    for index, (record, arrival) in enumerate(zip(records, arrivals)):
        assert record["index"] == index and record["outcome"] == "ok" and record["message"] == ""
        assert record["workflow"] == "fan_out" and record["session"] == f"user{index}"
        assert record["at"] == arrival.at and record["started"] >= arrival.at - 1e-6
        assert record["latency"] > 0
        assert record["finished"] == pytest.approx(record["started"] + record["latency"])
    assert "sent" in shown and "done" in shown  # the live display went to the console
    json.dumps(report)  # JSON-able as it is


def test_arrivals_are_open_loop(app: LoadedApp) -> None:
    """Requests of 0.5 s arriving at 20/s overlap: nobody waits for the one before."""
    arrivals = poisson_arrivals(20, 1.0, "slow", {"seconds": 0.5}, seed=3)
    report, _ = load(app, arrivals)
    records = report["requests"]
    assert len(records) >= 10 and report["summary"]["ok"] == len(records)
    assert report["summary"]["max_concurrency"] >= 5
    for record in records:  # fired on time, not after the previous one finished
        assert record["started"] - record["at"] < 0.2
        assert record["latency"] >= 0.5
    # they overlapped: the busy time adds up to far more than the wall time, and
    # the run took about 1 s of arrivals + 0.5 s, where a closed loop needs 0.5 s each
    assert sum(r["latency"] for r in records) > 2 * report["summary"]["duration"]
    assert report["summary"]["duration"] < 0.25 * len(records)


def test_trace_file(app: LoadedApp, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    lines = [
        {"at": 0.3, "workflow": "fan_out", "input": {"n": 2}, "session": "b"},
        {"at": 0.0, "workflow": "slow", "input": {"seconds": 0.2}, "session": "a"},
        {"at": 0.1, "workflow": "boom", "input": {"x": 1}},
        {"at": 0.1, "workflow": "fan_out", "input": {"n": 4, "delay": 0.0}, "session": "a"},
    ]
    trace.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    arrivals = read_trace(trace)
    assert [a.at for a in arrivals] == [0.0, 0.1, 0.1, 0.3]  # sorted by time
    assert arrivals[1].session == "default"
    report, _ = load(app, arrivals, workers=2)
    records = report["requests"]
    assert [(r["workflow"], r["session"], r["outcome"]) for r in records] == [
        ("slow", "a", "ok"), ("boom", "default", "ValueError"), ("fan_out", "a", "ok"), ("fan_out", "b", "ok")]
    assert records[1]["message"] == "bad 1"
    assert report["errors"] == {"ValueError": 1}
    assert report["summary"]["count"] == 4 and report["summary"]["ok"] == 3 and report["summary"]["errors"] == 1
    assert report["by_workflow"]["boom"] == {"count": 1, "ok": 0, "errors": 1, "mean": None, "p50": None,
                                             "p95": None, "p99": None, "max": None}
    assert report["by_workflow"]["fan_out"]["ok"] == 2
    # the slow request at 0 did not hold back the ones at 0.1
    assert records[2]["started"] < records[0]["finished"]

    table = report_table(report)
    buffer = io.StringIO()
    Console(file=buffer, width=150).print(table)
    text = buffer.getvalue()
    for word in ["workflow", "count", "errors", "p50", "p95", "p99", "boom", "fan_out", "total", "ValueError: 1"]:
        assert word in text
    out = tmp_path / "report.json"
    write_report(report, out)
    assert json.loads(out.read_text())["summary"]["count"] == 4


def test_seeded_arrivals() -> None:
    first = poisson_arrivals(50, 4.0, "fan_out", {"n": 1}, seed=1)
    assert first == poisson_arrivals(50, 4.0, "fan_out", {"n": 1}, seed=1)
    assert first != poisson_arrivals(50, 4.0, "fan_out", {"n": 1}, seed=2)
    assert 140 <= len(first) <= 260  # about rate * duration
    assert all(0 < a.at < 4.0 for a in first)
    assert [a.at for a in first] == sorted(a.at for a in first)
    assert {a.session for a in first} == {"default"}
    with pytest.raises(NalarcError, match="positive"):
        poisson_arrivals(0, 1.0, None, {})


def test_bad_traces_and_requests(app: LoadedApp, tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    for line, message in [
        ("{nope", r"bad.jsonl:2: not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"at": -1, "workflow": "fan_out"}', '"at" must be'),
        ('{"at": "soon", "workflow": "fan_out"}', '"at" must be'),
        ('{"at": 1, "input": [1]}', '"input" must be'),
        ('{"at": 1, "session": 3}', '"session" must be'),
        ('{"at": 1, "extra": 3}', "unknown keys"),
    ]:
        trace.write_text('{"at": 0, "workflow": "fan_out", "input": {"n": 1}}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(NalarcError, match=message):
            read_trace(trace)
    with pytest.raises(NalarcError, match="request 0 .*no workflow 'nope'"):
        resolve_arrivals(app, [Arrival(0.0, "nope", {})])
    with pytest.raises(NalarcError, match="request 1 .*missing a required argument"):
        resolve_arrivals(app, [Arrival(0.0, "fan_out", {"n": 1}), Arrival(0.5, "fan_out", {})])


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0 and percentile(values, 0) == 1.0


def test_cli_rate_and_trace(app_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "out.json"
    command = [sys.executable, "-m", "nalarc", "run", str(app_file), "--workers", "0", "--state", str(tmp_path / "s.db")]
    done = subprocess.run(
        [*command, "-w", "fan_out", "-i", '{"n": 2}', "--rate", "20", "--duration", "1", "--seed", "5",
         "--report", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "p99" in done.stdout and "fan_out" in done.stdout
    data = json.loads(report.read_text())
    assert data["config"] == {"trace": None, "rate": 20.0, "duration": 1.0, "seed": 5, "workers": 0}
    assert data["summary"]["count"] == len(poisson_arrivals(20, 1.0, "fan_out", {}, seed=5))
    assert data["summary"]["errors"] == 0

    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"at": 0, "workflow": "boom", "input": {"x": 2}}\n{"at": 0.05, "workflow": "slow", '
                     '"input": {"seconds": 0.01}}\n', encoding="utf-8")
    done = subprocess.run([*command, "--load", str(trace)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "boom" in done.stdout and "ValueError: 1" in done.stdout

    trace.write_text('{"at": 0, "workflow": "nope"}\n', encoding="utf-8")
    done = subprocess.run([*command, "--load", str(trace)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no workflow 'nope'" in done.stderr
    done = subprocess.run([*command, "--load", str(trace), "--serve"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "exclude each other" in done.stderr


def test_follow_ups_wait_for_the_reply_and_think(app: LoadedApp, tmp_path: Path) -> None:
    """A ``think`` follow-up is sent think seconds after its session's previous reply, not at its ``at``."""
    trace = tmp_path / "sessions.jsonl"
    lines = [
        {"at": 0.0, "workflow": "slow", "input": {"seconds": 0.3}, "session": "alice"},
        {"at": 0.0, "workflow": "slow", "input": {"seconds": 0.1}, "session": "alice", "think": 0.2},
        {"at": 0.0, "workflow": "slow", "input": {"seconds": 0.1}, "session": "alice", "think": 0.0},
        {"at": 0.05, "workflow": "slow", "input": {"seconds": 0.1}, "session": "bob"},
    ]
    trace.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    arrivals = read_trace(trace)
    assert [a.think for a in arrivals] == [None, 0.2, 0.0, None]
    report, _ = load(app, arrivals)
    first, second, third, bob = report["requests"]
    assert second["started"] >= first["finished"] + 0.2 - 1e-3
    assert third["started"] >= second["finished"] - 1e-3
    assert bob["started"] < first["finished"]  # other sessions do not wait (open loop across sessions)
    assert report["summary"]["ok"] == 4


def test_bad_think(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_text(json.dumps({"at": 0, "think": -1}) + "\n", encoding="utf-8")
    with pytest.raises(NalarcError, match=r"bad.jsonl:1: \"think\" must be a number of seconds >= 0"):
        read_trace(trace)
