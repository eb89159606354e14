"""Issue 14, acceptance 1: under load, SIGKILL a worker every ~2 s and the driver once, restart.

``nalarc run APP --serve --workers 2`` as a subprocess, 50 async
requests over four sessions.  Each request: an idempotent ``fetch``, a call of a
managed-state agent (``Ledger.record`` appends the request's tag to its
session's list and returns the new length), a non-idempotent ``charge`` that
appends to an effect log.  After the chaos:

* every accepted request (every ``202``) has exactly one final outcome, in the
  journal and at ``GET /v1/runs/{id}``; a failure is a typed one (the
  non-idempotent call was cut off: ``OutcomeUnknown`` after the driver's kill,
  ``BrokenWorkerError`` after a worker's);
* ``charge`` ran at most once per request, and exactly once for a request that
  is ``done``;
* the managed state equals a sequential oracle: each session's list holds each
  tag at most once, every ``done`` request's tag is in it, and sits where that
  request's ``record`` said (``entries[n - 1] == tag``): no update applied twice,
  none lost.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_crash_resume import Server, effect_lines, free_port, journal_rows

APP = '''
import time
import nalarc

def note(log, line):
    with open(log, "a") as f:
        f.write(line + "\\n")

@nalarc.tool(idempotent=True)
def fetch(tag):
    time.sleep(0.15)
    return tag * 2

@nalarc.agent(max_instances=2)
class Ledger:
    entries = nalarc.ManagedList()

    def record(self, tag):
        time.sleep(0.05)
        self.entries.append(tag)
        return len(self.entries)

@nalarc.tool
def charge(tag, n, log):
    note(log, f"charge-start {tag}")
    time.sleep(0.25)
    note(log, f"charge-end {tag}")
    return n

@nalarc.workflow
def job(tag, log):
    data = fetch(tag)
    n = Ledger().record(tag)
    return {"data": data, "n": charge(tag, n, log)}
'''

SESSIONS = 4
TYPED_FAILURES = {"OutcomeUnknown", "BrokenWorkerError"}


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "chaos_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


class WorkerKiller:
    """SIGKILLs one of the current server's workers every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float) -> None:
        self.interval, self.base = interval, ""
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self, base: str) -> None:
        self.base = base
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        import os

        while not self._stop.wait(self.interval):
            try:
                workers = httpx.get(f"{self.base}/v1/status", timeout=2).json()["workers"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue  # the driver is down (being restarted)
            alive = [w["pid"] for w in workers if w["alive"]]
            if alive:
                try:
                    os.kill(alive[self.kills % len(alive)], signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass


def submit(base: str, tag: str, log: Path) -> str | None:
    try:
        response = httpx.post(f"{base}/v1/workflows/job?async=1", json={"tag": tag, "log": str(log)},
                              headers={"x-nalarc-session": f"s{int(tag[1:]) % SESSIONS}"}, timeout=5)
    except httpx.TransportError:
        return None  # not accepted: nothing was promised
    if response.status_code != 202:
        return None
    run_id: str = response.json()["run_id"]
    return run_id


def wait_for_a_charge_in_flight(log: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        lines = effect_lines(log)
        if any(line.replace("start", "end") not in lines for line in lines if line.startswith("charge-start")):
            return
        assert time.monotonic() < deadline, lines
        time.sleep(0.01)


def final(base: str, run_id: str, deadline: float) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = httpx.get(f"{base}/v1/runs/{run_id}", timeout=5).json()
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def managed_entries(state: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(state)
    try:
        rows = db.execute("SELECT session, data FROM managed_state").fetchall()
    finally:
        db.close()
    return {session: json.loads(data)["entries"] for session, data in rows}


def test_chaos_worker_and_driver_kills_under_load(app_file: Path, tmp_path: Path) -> None:
    state, log, port = tmp_path / "state.db", tmp_path / "effects.log", free_port()
    began = time.monotonic()
    server = Server(app_file, state, port)
    killer = WorkerKiller(2.0)
    killer.start(server.base)
    accepted: dict[str, str] = {}  # tag -> run id
    try:
        for i in range(20):  # first wave, paced so that calls are in flight at the kills
            if (run_id := submit(server.base, f"t{i}", log)) is not None:
                accepted[f"t{i}"] = run_id
            time.sleep(0.05)
        wait_for_a_charge_in_flight(log)
        server.stop(signal.SIGKILL)  # the driver, once, with requests in flight
        server = Server(app_file, state, port)
        resumed = httpx.get(f"{server.base}/v1/status", timeout=5).json()["journal"]["resumed_at_start"]
        for i in range(20, 50):  # second wave, on the restarted server, workers still being killed
            if (run_id := submit(server.base, f"t{i}", log)) is not None:
                accepted[f"t{i}"] = run_id
            time.sleep(0.2)
        deadline = time.monotonic() + 40
        outcomes = {tag: final(server.base, run_id, deadline) for tag, run_id in accepted.items()}
    finally:
        killer.stop()
        server.stop(signal.SIGTERM)

    assert len(accepted) == 50 and killer.kills >= 2, (len(accepted), killer.kills)
    assert resumed >= 1  # the driver's kill interrupted requests
    rows = journal_rows(state)
    assert sorted(rows) == sorted(accepted.values())  # one row per accepted request, no other
    by_status = Counter(body["status"] for body in outcomes.values())
    assert {rows[run_id][0] for run_id in accepted.values()} <= {"done", "failed"}
    for tag, body in outcomes.items():
        assert rows[accepted[tag]][0] == body["status"]
    failures = Counter(body["error"] for body in outcomes.values() if body["status"] == "failed")
    assert set(failures) <= TYPED_FAILURES, [b for b in outcomes.values() if b["status"] == "failed"]

    lines = effect_lines(log)
    for tag, body in outcomes.items():  # the non-idempotent tool: at most once, exactly once when done
        assert lines.count(f"charge-start {tag}") <= 1, tag
        if body["status"] == "done":
            assert lines.count(f"charge-start {tag}") == 1 and lines.count(f"charge-end {tag}") == 1, tag

    entries = managed_entries(state)
    for session, tags in entries.items():  # the sequential oracle
        assert len(tags) == len(set(tags)), (session, tags)  # no update applied twice
        assert all(int(t[1:]) % SESSIONS == int(session[1:]) for t in tags)
    for tag, body in outcomes.items():
        if body["status"] == "done":
            tags = entries[f"s{int(tag[1:]) % SESSIONS}"]
            assert body["result"] == {"data": tag * 2, "n": tags.index(tag) + 1}  # where its call put it
    print(f"\nchaos: {len(accepted)} accepted, {resumed} resumed, {dict(by_status)}, failures {dict(failures)}, "
          f"{killer.kills} worker kills + 1 driver kill, {time.monotonic() - began:.1f} s")
