"""Differential tests: every corpus app, compiled, returns what plain Python returns.

The plain side runs ``python app.py`` (each app prints one JSON line per
request); the compiled side builds the app with nalarc and runs the same
requests, in order and with the same sessions, on the in-process runtime
(one runtime for all requests, so managed state carries across them).  A
handful of apps also go through the real CLI, one process per request, with
managed state persisted in SQLite between the processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nalarc import load_app
from nalarc.executor import InProcessRunner
from nalarc.testing import outcome_of_exception

CORPUS = Path(__file__).resolve().parent / "corpus" / "apps"
APPS = sorted(CORPUS.glob("[0-9][0-9]_*.py"))
ENV = {**os.environ, "PYTHONPATH": str(CORPUS.parent.parent.parent)}


def plain_outputs(app: Path) -> list[Any]:
    done = subprocess.run(
        [sys.executable, str(app)], capture_output=True, text=True, env=ENV, cwd=app.parent, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def normalized(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def test_corpus_is_big_enough() -> None:
    assert len(APPS) >= 74


@pytest.mark.parametrize("app", APPS, ids=[a.stem for a in APPS])
def test_compiled_equals_plain(app: Path, tmp_path: Path) -> None:
    expected = plain_outputs(app)
    loaded = load_app(app, out_dir=tmp_path / "build")
    runner = InProcessRunner(loaded)
    got: list[Any] = []
    for workflow, kwargs, session in loaded.module.CALLS:
        try:
            got.append(normalized(runner.run(workflow, dict(kwargs), session)))
        except Exception as exc:  # noqa: BLE001 - compared as data, like the plain side
            got.append(outcome_of_exception(exc))
    runner.close()
    assert len(got) == len(expected)
    for index, (want, have) in enumerate(zip(expected, got)):
        assert have == want, f"request {index} ({loaded.module.CALLS[index][0]}) differs"


#: (app, worker processes): in-driver and on workers, state across CLI processes.
CLI_APPS = [("01_branching", 0), ("18_exception_order", 0), ("12_managed_state", 2), ("35_multi_agent_sessions", 2)]


@pytest.mark.parametrize(("name", "workers"), CLI_APPS)
def test_cli_run_equals_plain(name: str, workers: int, tmp_path: Path) -> None:
    """``nalarc run`` per request, state in SQLite between the processes."""
    app = CORPUS / f"{name}.py"
    expected = plain_outputs(app)
    build_dir = tmp_path / "build"
    done = subprocess.run(
        [sys.executable, "-m", "nalarc", "build", str(app), "-o", str(build_dir)],
        capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = load_app(build_dir)
    for index, (workflow, kwargs, session) in enumerate(loaded.module.CALLS):
        done = subprocess.run(
            [sys.executable, "-m", "nalarc", "run", str(build_dir), "--workflow", workflow,
             "--input", json.dumps(kwargs), "--session", session, "--state", str(tmp_path / "state.db"),
             "--workers", str(workers)],
            capture_output=True, text=True, env=ENV, timeout=120,
        )
        if "error" in expected[index] and set(expected[index]) == {"error", "message"}:
            assert done.returncode == 1
            assert expected[index]["error"] in done.stderr
            assert expected[index]["message"] in done.stderr
        else:
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == expected[index]


@pytest.mark.parametrize("app", APPS, ids=[a.stem for a in APPS])
def test_compiled_on_worker_processes_equals_plain(app: Path, tmp_path: Path) -> None:
    """The same corpus on 2 worker processes with 2 instances of every agent."""
    from nalarc.executor import Placement, run_requests

    expected = plain_outputs(app)
    loaded = load_app(app, out_dir=tmp_path / "build")
    requests = [(w, dict(k), s) for w, k, s in loaded.module.CALLS]
    outcomes = run_requests(loaded, requests, placement=Placement(workers=2, default_instances=2))
    got = [normalized(o.value) if o.error is None else outcome_of_exception(o.error) for o in outcomes]
    for index, (want, have) in enumerate(zip(expected, got)):
        assert have == want, f"request {index} ({requests[index][0]}) differs"
