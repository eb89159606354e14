"""The request journal on its own: a real SQLite file, reopened as a restarted server would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nalarc._errors import NalarcError
from nalarc.serve._journal import Journal, canonical_json, journal_path_for


def test_accepted_requests_survive_reopening_and_outcomes_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    journal.accept("r1", "wf", {"b": 2, "a": [1, "x"]}, "alice", "key-1", now=100.0)
    journal.accept("r2", "wf", {}, "default", None, now=101.0)
    journal.finish("r1", "done", {"answer": 42}, now=102.0)
    journal.close()

    reopened = Journal(path)
    assert [e.run_id for e in reopened.unfinished()] == ["r2"]
    first = reopened.by_key("key-1")
    assert first is not None and first.run_id == "r1" and first.status == "done"
    assert first.outcome == {"answer": 42} and first.inputs == {"a": [1, "x"], "b": 2}
    assert (first.session, first.accepted_at, first.finished_at, first.attempts) == ("alice", 100.0, 102.0, 1)
    reopened.count_resume("r2")
    entry = reopened.get("r2")
    assert entry is not None and entry.attempts == 2 and entry.idempotency_key is None
    assert reopened.counts() == {"accepted": 1, "done": 1}
    with pytest.raises(sqlite3.IntegrityError):  # a key names one request
        reopened.accept("r3", "wf", {}, "default", "key-1")
    reopened.close()


def test_one_server_per_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = Journal(path)
    first.accept("r1", "wf", {}, "default", None)
    with pytest.raises(NalarcError, match="in use by another server"):
        Journal(path)
    first.close()
    Journal(path).close()  # free again once the first one is closed


def test_prune_by_age_and_count_never_touches_unfinished(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", retention=10.0, max_runs=3)
    for i in range(6):
        journal.accept(f"r{i}", "wf", {"i": i}, "default", f"k{i}", now=float(i))
        journal.finish(f"r{i}", "done" if i % 2 else "failed", i, now=100.0 + i)
    journal.accept("old-unfinished", "wf", {}, "default", None, now=0.0)
    assert journal.prune(now=106.0) == 3  # beyond the newest 3
    assert journal.get("r2") is None and journal.get("r3") is not None
    assert journal.prune(now=114.5) == 2  # r3, r4 finished more than 10 s before
    assert [journal.get(r) is not None for r in ("r5", "old-unfinished")] == [True, True]
    assert journal.by_key("k0") is None  # a pruned request frees its key
    journal.close()


def test_default_path_and_memory() -> None:
    assert journal_path_for(Path(".nalarc/state.db")) == Path(".nalarc/state.requests.db")
    assert journal_path_for(Path(":memory:")) is None and journal_path_for(None) is None
    memory = Journal(None)
    memory.accept("r", "wf", {}, "s", None)
    assert memory.path is None and [e.run_id for e in memory.unfinished()] == ["r"]
    memory.close()
    assert canonical_json({"b": 1, "a": 2.5}) == '{"a":2.5,"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_the_call_journal_keeps_results_and_markers_until_the_request_finishes(tmp_path: Path) -> None:
    from nalarc.runtime.lowlevel import MISSING, STARTED

    path = tmp_path / "j.db"
    journal = Journal(path)
    journal.accept("r1", "wf", {}, "s", None)
    journal.accept("r2", "wf", {}, "s", None)
    journal.record("r1", "k1", {"answer": [1, 2.5, None], "obj": {3, 4}})
    journal.started("r1", "k2")
    journal.started("r2", "k1")
    journal.record("r2", "k1", "done after its marker")
    journal.started("r2", "k1")  # a second marker never hides the result
    journal.close()

    journal = Journal(path)  # what a restarted server sees
    assert journal.lookup("r1", "k1") == {"answer": [1, 2.5, None], "obj": {3, 4}}
    assert journal.lookup("r1", "k2") is STARTED
    assert journal.lookup("r1", "k3") is MISSING
    assert journal.lookup("r2", "k1") == "done after its marker"
    journal.finish("r1", "done", {"x": 1})
    assert journal.lookup("r1", "k1") is MISSING and journal.call_count("r1") == 0  # dropped with its outcome
    assert journal.call_count() == 1
    journal.close()


def test_attempts_count_runs_that_ended_in_a_crash_not_graceful_stops(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", max_attempts=2)
    journal.accept("r1", "wf", {}, "s", None)  # its first run
    journal.uncount_attempt("r1")  # ... stopped by a drain
    journal.count_resume("r1")  # resumed at the next start
    (entry,) = journal.unfinished()
    assert entry.attempts == 1 and journal.max_attempts == 2
    journal.count_resume("r1")
    assert journal.unfinished()[0].attempts == 2
    journal.close()
    with pytest.raises(ValueError):
        Journal(None, max_attempts=0)
