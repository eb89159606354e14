"""``nalarc run APP --serve --workers 2`` as a real process: SIGKILL and SIGTERM with requests in flight.

The app's tool appends ``start TAG`` / ``end TAG`` to an effect log, so the tests
count how often each request's workflow really ran.  The tool is ``idempotent``:
one interrupted mid-way runs again on resume (a non-idempotent one would fail
with ``OutcomeUnknown``: tests/serve/test_call_replay.py), so the checks are:
every accepted request has exactly one final result, under its original run id,
and a request finished before the crash never ran again.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = '''
import time
import nalarc

@nalarc.tool(idempotent=True)
def effect(tag, seconds, log):
    with open(log, "a") as f:
        f.write(f"start {tag}\\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"end {tag}\\n")
    return tag.upper()

@nalarc.workflow
def job(tag, seconds, log):
    return {"tag": effect(tag, seconds, log)}
'''


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "crash_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One ``nalarc run --serve`` process on a state file (its journal is next to it)."""

    def __init__(self, app_file: Path, state: Path, port: int, *extra: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nalarc", "run", str(app_file), "--serve", "--port", str(port), "--workers", "2",
             "--state", str(state), *extra],
            cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(self.process.communicate()[1])
            time.sleep(0.05)

    def post(self, tag: str, seconds: float, log: Path, *, key: str | None = None, run_async: bool = False,
             timeout: float = 30) -> httpx.Response:
        headers = {} if key is None else {"idempotency-key": key}
        return httpx.post(f"{self.base}/v1/workflows/job{'?async=1' if run_async else ''}",
                          json={"tag": tag, "seconds": seconds, "log": str(log)}, headers=headers, timeout=timeout)

    def journal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = httpx.get(f"{self.base}/v1/status").json()["journal"]["requests"]
        return counts

    def wait_for(self, status: str, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.journal_counts().get(status, 0) < count:
            assert time.monotonic() < deadline, self.journal_counts()
            time.sleep(0.02)

    def stop(self, sig: signal.Signals, timeout: float = 30) -> str:
        self.process.send_signal(sig)
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        return stderr


def journal_rows(state: Path) -> dict[str, tuple[str, str | None]]:
    """run id -> (status, idempotency key), read straight from the journal file."""
    with sqlite3.connect(state.with_name(f"{state.stem}.requests.db")) as db:
        rows = db.execute("SELECT run_id, status, idempotency_key FROM requests").fetchall()
    db.close()
    return {run_id: (status, key) for run_id, status, key in rows}


def effect_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run a blocking request in a thread; its response (or exception) lands in the list."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(call())
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_sigkill_in_flight_then_restart_completes_every_accepted_request_once(app_file: Path, tmp_path: Path) -> None:
    state, log, port = tmp_path / "state.db", tmp_path / "effects.log", free_port()
    server = Server(app_file, state, port)
    # finished before the crash: must never run again
    fast = {f"fast{i}": server.post(f"fast{i}", 0.0, log, key=f"k-fast{i}") for i in range(4)}
    assert {r.status_code for r in fast.values()} == {200}
    # in flight at the crash: async ones (half of them keyed), synchronous keyed ones whose client is cut off
    slow_async = {f"async{i}": server.post(f"async{i}", 2.0, log, run_async=True,
                                           key=f"k-async{i}" if i % 2 else None).json()["run_id"] for i in range(6)}
    sync_threads = [in_thread(lambda i=i: server.post(f"sync{i}", 2.0, log, key=f"k-sync{i}")) for i in range(3)]
    server.wait_for("accepted", 9)  # all accepted (journaled) before the kill
    time.sleep(0.3)  # let some tools start, so the crash interrupts them mid-way
    server.stop(signal.SIGKILL)
    for thread, _ in sync_threads:
        thread.join(10)
    assert all(isinstance(out[0], httpx.TransportError) for _, out in sync_threads)  # nobody got an answer
    before = journal_rows(state)
    assert sorted(s for s, _ in before.values()) == ["accepted"] * 9 + ["done"] * 4
    started_before = effect_lines(log)

    restarted = Server(app_file, state, port)
    try:
        for tag, run_id in slow_async.items():  # found by their original run ids
            deadline = time.monotonic() + 15
            while (body := httpx.get(f"{restarted.base}/v1/runs/{run_id}").json())["status"] == "pending":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert body == {"run_id": run_id, "workflow": "job", "session": "default", "status": "done",
                            "result": {"tag": tag.upper()}}
        for i in range(3):  # the cut-off clients retry with their keys and get the resumed run's answer
            retry = restarted.post(f"sync{i}", 2.0, log, key=f"k-sync{i}")
            assert retry.status_code == 200 and retry.json() == {"result": {"tag": f"SYNC{i}"}}
            assert retry.headers["idempotent-replayed"] == "true"
        for tag, first in fast.items():
            retry = restarted.post(tag, 0.0, log, key=f"k-{tag}")
            assert retry.json() == first.json() and retry.headers["x-nalarc-run-id"] == first.headers["x-nalarc-run-id"]
        status = httpx.get(f"{restarted.base}/v1/status").json()
        assert status["journal"]["resumed_at_start"] == 9
    finally:
        stderr = restarted.stop(signal.SIGTERM)
    assert "resumed 9 unfinished request(s)" in stderr

    after = journal_rows(state)
    assert after.keys() == before.keys()  # no request lost, none added by the retries
    assert {s for s, _ in after.values()} == {"done"}
    lines = effect_lines(log)
    for tag in fast:  # finished before the crash: ran exactly once
        assert lines.count(f"start {tag}") == 1 and lines.count(f"end {tag}") == 1
    interrupted = [*slow_async, *(f"sync{i}" for i in range(3))]
    for tag in interrupted:  # one complete run after the restart; the killed attempt never finished
        assert lines.count(f"end {tag}") == 1, tag
        assert lines.count(f"start {tag}") == 1 + started_before.count(f"start {tag}"), tag
    print(f"\ninterrupted mid-tool (tool started twice): {sum(f'start {t}' in started_before for t in interrupted)}"
          f" of {len(interrupted)}")


def test_sigterm_drains_in_flight_requests_and_journals_the_rest(app_file: Path, tmp_path: Path) -> None:
    state, log, port = tmp_path / "state.db", tmp_path / "effects.log", free_port()
    server = Server(app_file, state, port, "--drain-timeout", "3")
    short_async = {f"short{i}": server.post(f"short{i}", 1.0, log, run_async=True).json()["run_id"] for i in range(3)}
    long_run = server.post("long", 6.0, log, run_async=True, key="k-long").json()["run_id"]
    sync_threads = [in_thread(lambda i=i: server.post(f"sync{i}", 1.0, log)) for i in range(2)]
    server.wait_for("accepted", 6)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while True:  # draining: health says so, new work is refused
        health = httpx.get(f"{server.base}/healthz")
        if health.status_code == 503:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert health.json()["status"] == "draining"
    refused = server.post("late", 0.0, log)
    assert refused.status_code == 503 and "retry-after" in refused.headers
    stderr = _wait(server)
    stopped_after = time.monotonic() - began
    assert server.process.returncode == 0, stderr
    assert 3.0 <= stopped_after < 8.0  # waited out the drain deadline for "long", then stopped
    for thread, out in sync_threads:  # the synchronous requests in flight were answered
        thread.join(5)
        assert out[0].status_code == 200
    assert sorted(out[0].json()["result"]["tag"] for _, out in sync_threads) == ["SYNC0", "SYNC1"]
    rows = journal_rows(state)
    assert sorted(s for s, _ in rows.values()) == ["accepted"] + ["done"] * 5
    assert rows[long_run][0] == "accepted"
    assert "stopped with 1 request(s) unfinished" in stderr
    assert "late" not in " ".join(effect_lines(log))

    restarted = Server(app_file, state, port)
    try:
        for run_id in [*short_async.values()]:  # drained ones are answered from the journal
            assert httpx.get(f"{restarted.base}/v1/runs/{run_id}").json()["status"] == "done"
        retry = restarted.post("long", 6.0, log, key="k-long", timeout=20)  # waits for the resumed run
        assert retry.json() == {"result": {"tag": "LONG"}} and retry.headers["x-nalarc-run-id"] == long_run
    finally:
        restarted.stop(signal.SIGTERM)
    assert {s for s, _ in journal_rows(state).values()} == {"done"}
    lines = effect_lines(log)
    assert all(lines.count(f"start {tag}") == 1 for tag in [*short_async, "sync0", "sync1"])  # drained: ran once
    assert lines.count("end long") == 1


def _wait(server: Server) -> str:
    """The server stops by itself after draining (one SIGTERM only)."""
    try:
        _, stderr = server.process.communicate(timeout=20)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()
    return stderr


POISON_APP = '''
import os
import signal
import time
import nalarc

@nalarc.tool(idempotent=True)  # else the resumed run would not run it again (OutcomeUnknown)
def crash_the_server(log):
    with open(log, "a") as f:
        f.write("start\\n")
    time.sleep(0.3)  # the 202 goes out first
    os.kill(os.getppid(), signal.SIGKILL)  # the worker's parent: the server

@nalarc.workflow
def poison(log):
    return crash_the_server(log)

@nalarc.workflow
def job(tag, seconds, log):
    return tag
'''


def test_a_request_that_crashes_every_server_that_runs_it_is_failed_as_poison(tmp_path: Path) -> None:
    """``--journal-max-attempts 2``: the request's first run and one resumed run crash the server;
    the next start fails it with ``PoisonRequest`` instead of crashing again, and serves on."""
    app_file = tmp_path / "poison_app.py"
    app_file.write_text(textwrap.dedent(POISON_APP), encoding="utf-8")
    state, log, port = tmp_path / "state.db", tmp_path / "effects.log", free_port()
    server = Server(app_file, state, port, "--journal-max-attempts", "2")
    accepted = httpx.post(f"{server.base}/v1/workflows/poison?async=1", json={"log": str(log)}, timeout=10)
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    assert server.process.wait(timeout=30) == -signal.SIGKILL
    server.process.communicate()
    # The restart resumes it (its second run): the server is killed again, maybe before it answers /healthz.
    restart = subprocess.Popen(
        [sys.executable, "-m", "nalarc", "run", str(app_file), "--serve", "--port", str(port), "--workers", "2",
         "--state", str(state), "--journal-max-attempts", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert restart.wait(timeout=60) == -signal.SIGKILL
    restart.communicate()
    assert effect_lines(log) == ["start", "start"]
    server = Server(app_file, state, port, "--journal-max-attempts", "2")
    try:
        run = httpx.get(f"{server.base}/v1/runs/{run_id}", timeout=10).json()
        assert run["status"] == "failed" and run["error"] == "PoisonRequest", run
        assert "started 2 time(s)" in run["message"]
        status = httpx.get(f"{server.base}/v1/status", timeout=10).json()["journal"]
        assert status["poisoned_at_start"] == 1 and status["resumed_at_start"] == 0
        assert server.post("after", 0.0, log).json() == {"result": "after"}
        assert effect_lines(log) == ["start", "start"]  # not run a third time
    finally:
        server.stop(signal.SIGTERM)
    assert journal_rows(state)[run_id] == ("failed", None)
