"""Call-level replay with real servers: SIGKILL after some calls completed, restart on the same journal.

``nalarc run APP --serve --workers 2`` as a subprocess; every tool appends a line
to an effect log, so the tests count how often each call really ran.  The
workflow: three ``fetch`` calls in parallel, ``join`` depending on all three, then
``hold`` (idempotent) and ``charge`` (not idempotent), either of which can be made
to wait for a gate file, so the server is killed while it runs.
"""

from __future__ import annotations

import importlib.util
import signal
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_crash_resume import Server, effect_lines, free_port

APP = '''
import os
import time
import nalarc

def note(log, line):
    with open(log, "a") as f:
        f.write(line + "\\n")

def wait_for(gate):
    while gate is not None and not os.path.exists(gate):
        time.sleep(0.01)

@nalarc.tool(idempotent=True)
def fetch(tag, i, log):
    note(log, f"fetch {tag} {i}")
    return f"{tag}-{i}"

@nalarc.tool(idempotent=True)
def join(tag, parts, log):
    note(log, f"join {tag}")
    return "+".join(parts)

@nalarc.tool(idempotent=True)
def hold(tag, text, log, gate):
    note(log, f"hold-start {tag}")
    wait_for(gate)
    note(log, f"hold-end {tag}")
    return text.upper()

@nalarc.tool
def charge(tag, text, log, gate):
    note(log, f"charge-start {tag}")
    wait_for(gate)
    note(log, f"charge-end {tag}")
    return len(text)

@nalarc.workflow
def job(tag, log, gate, waits):
    parts = [fetch(tag, i, log) for i in range(3)]
    joined = join(tag, parts, log)
    held = hold(tag, joined, log, gate if waits == "hold" else None)
    charged = charge(tag, held, log, gate if waits == "charge" else None)
    return {"joined": joined, "held": held, "charged": charged}
'''


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "replay_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


def plain_python(app_file: Path, tmp_path: Path, tag: str) -> Any:
    """What ``python app.py`` computes for the same request (its own log, an open gate)."""
    spec = importlib.util.spec_from_file_location("replay_app_plain", app_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.job(tag, str(tmp_path / "plain.log"), None, "none")


def start_async(server: Server, tag: str, log: Path, gate: Path, waits: str) -> str:
    response = httpx.post(f"{server.base}/v1/workflows/job?async=1", timeout=10,
                          json={"tag": tag, "log": str(log), "gate": str(gate), "waits": waits})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def wait_for_line(log: Path, line: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while effect_lines(log).count(line) < count:
        assert time.monotonic() < deadline, effect_lines(log)
        time.sleep(0.02)


def final(server: Server, run_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (body := httpx.get(f"{server.base}/v1/runs/{run_id}", timeout=10).json())["status"] == "pending":
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    out: dict[str, Any] = body
    return out


def journaled_calls(state: Path) -> dict[str, int]:
    """run id -> calls in the journal file (results and markers)."""
    db = sqlite3.connect(state.with_name(f"{state.stem}.requests.db"))
    try:
        rows = db.execute("SELECT run_id, COUNT(*) FROM calls GROUP BY run_id").fetchall()
    finally:
        db.close()
    return {run_id: n for run_id, n in rows}


def test_completed_calls_are_replayed_not_rerun_after_sigkill(app_file: Path, tmp_path: Path) -> None:
    state, log, gate, port = tmp_path / "state.db", tmp_path / "effects.log", tmp_path / "gate", free_port()
    server = Server(app_file, state, port)
    tags = ["a", "b", "c"]
    runs = {tag: start_async(server, tag, log, gate, "hold") for tag in tags}
    for tag in tags:  # fetches and join done (journaled before hold could start), hold running
        wait_for_line(log, f"hold-start {tag}")
    server.stop(signal.SIGKILL)
    # per run: 3 fetches + join journaled; hold is idempotent: no marker
    assert journaled_calls(state) == {run_id: 4 for run_id in runs.values()}

    gate.touch()
    restarted = Server(app_file, state, port)
    try:
        for tag, run_id in runs.items():
            body = final(restarted, run_id)
            assert body["status"] == "done", body
            assert body["result"] == plain_python(app_file, tmp_path, tag)
        calls = httpx.get(f"{restarted.base}/v1/status", timeout=10).json()["journal"]["calls"]
        # per request: 3 fetches + join replayed; hold and charge journaled after the restart
        assert calls == {"replayed": 12, "journaled": 6, "unjournaled": 0}
        assert 'nalarc_calls_journal_total{outcome="replayed"} 12.0\n' in httpx.get(f"{restarted.base}/metrics").text
    finally:
        restarted.stop(signal.SIGTERM)
    lines = effect_lines(log)
    for tag in tags:
        for i in range(3):  # completed before the kill: ran exactly once, replayed after
            assert lines.count(f"fetch {tag} {i}") == 1, (tag, lines)
        assert lines.count(f"join {tag}") == 1
        # idempotent and interrupted: ran again, completed once; then charge ran once
        assert lines.count(f"hold-start {tag}") == 2 and lines.count(f"hold-end {tag}") == 1
        assert lines.count(f"charge-start {tag}") == 1 and lines.count(f"charge-end {tag}") == 1
    assert journaled_calls(state) == {}  # a finished request's calls are dropped with its outcome


def test_a_non_idempotent_call_in_flight_at_the_kill_fails_with_outcome_unknown(app_file: Path,
                                                                               tmp_path: Path) -> None:
    state, log, gate, port = tmp_path / "state.db", tmp_path / "effects.log", tmp_path / "gate", free_port()
    server = Server(app_file, state, port)
    run_id = start_async(server, "x", log, gate, "charge")
    done_id = start_async(server, "y", log, gate, "none")  # finishes before the kill
    wait_for_line(log, "charge-start x")
    assert final(server, done_id)["status"] == "done"
    server.stop(signal.SIGKILL)
    assert journaled_calls(state) == {run_id: 6}  # 3 fetches, join, hold, charge's started marker

    gate.touch()
    restarted = Server(app_file, state, port)
    try:
        body = final(restarted, run_id)
    finally:
        restarted.stop(signal.SIGTERM)
    assert body["status"] == "failed" and body["error"] == "OutcomeUnknown", body
    assert "charge" in body["message"] and run_id in body["message"]
    lines = effect_lines(log)
    assert lines.count("charge-start x") == 1 and lines.count("charge-end x") == 0  # at most once
    assert lines.count("hold-start x") == 1 and all(lines.count(f"fetch x {i}") == 1 for i in range(3))
    assert lines.count("charge-end y") == 1 and lines.count("fetch y 0") == 1  # the finished one never ran again
