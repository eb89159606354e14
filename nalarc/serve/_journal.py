"""The request journal of ``nalarc run --serve``: every accepted request, in SQLite.

A request is written here (``accepted``) before the server acknowledges it, and
its outcome (``done`` / ``failed`` with the result or error body) before the
final answer goes out.  A server that starts on a journal resumes every row
still ``accepted``: those are requests some client was promised, whose outcome
nobody recorded.

SQLite in WAL mode with ``synchronous=NORMAL`` by default: a commit is in the
WAL file (the OS page cache) when it returns, so it survives the server process
being killed; only an OS crash or power loss can drop the last commits (they
are fsynced at checkpoints).  ``synchronous=FULL`` fsyncs every commit and also
survives power loss, at the price measured in ``benchmarks/journal.py``
(docs/durability.md has the figures).

The connection holds the database in exclusive locking mode: one server per
journal, or two servers would resume the same requests twice.  The lock is the
OS's, so it goes away with a killed process.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cloudpickle

from .._errors import NalarcError
from ..runtime.lowlevel import MISSING, STARTED

Status = Literal["accepted", "done", "failed"]
Sync = Literal["normal", "full"]

#: Finished requests older than this are pruned (seconds): 7 days.
DEFAULT_RETENTION = 7 * 24 * 3600.0
#: Finished requests kept at most (the newest).
DEFAULT_MAX_RUNS = 100_000
#: Runs a request gets that end in a crash of the server before it is failed as a poison request.
DEFAULT_MAX_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    inputs TEXT NOT NULL,
    session TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'done', 'failed')),
    outcome TEXT,
    accepted_at REAL NOT NULL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS requests_by_finish ON requests (status, finished_at);
CREATE TABLE IF NOT EXISTS calls (
    run_id TEXT NOT NULL,
    call_key TEXT NOT NULL,
    value BLOB,
    PRIMARY KEY (run_id, call_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS interrupts (
    run_id TEXT PRIMARY KEY,
    call_key TEXT NOT NULL,
    payload TEXT NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = "run_id, workflow, inputs, session, idempotency_key, status, outcome, accepted_at, finished_at, attempts"


@dataclass
class Entry:
    """One journaled request."""

    run_id: str
    workflow: str
    inputs: dict[str, Any]
    session: str
    idempotency_key: str | None
    status: Status
    #: The result when ``done``, the error body when ``failed``, else None.
    outcome: Any
    accepted_at: float
    finished_at: float | None
    #: 1 + how many times a restart resumed it.
    attempts: int


def canonical_json(value: Any) -> str:
    """JSON text that is equal for equal values (keys sorted), so bodies compare as text."""
    return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))


def journal_path_for(state: Path | None) -> Path | None:
    """Where the journal goes by default: next to the state store, or in memory with it.

    ``.nalarc/state.db`` -> ``.nalarc/state.requests.db``.  (Not ``state.db-journal``:
    that is SQLite's own rollback-journal name.)
    """
    if state is None or str(state) == ":memory:":
        return None
    return state.with_name(f"{state.stem}.requests.db")


class Journal:
    """Accepted requests and their outcomes; not thread-safe (the server's trio thread uses it).

    It also holds each run's event stream (``events``: id, type, JSON data, kept as long as
    the request) and the runs paused by ``nalarc.interrupt`` (``interrupts``: the row stays
    ``accepted``, so a restart neither resumes nor forgets it).

    It is also the requests' call journal (``lookup`` / ``started`` / ``record``, the
    runtime's ``CallJournal``): the ``calls`` table holds each journaled call's result
    (cloudpickle) or its ``started`` marker (NULL), keyed (run id, call key).
    """

    def __init__(self, path: Path | None, *, sync: Sync = "normal", retention: float = DEFAULT_RETENTION,
                 max_runs: int = DEFAULT_MAX_RUNS, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if retention <= 0 or max_runs < 1 or max_attempts < 1:
            raise ValueError("retention must be positive, max_runs and max_attempts at least 1")
        self.path, self.retention, self.max_runs = path, retention, max_runs
        #: A request whose ``attempts`` reached this is not resumed (:meth:`ServeApp.resume_unfinished`).
        self.max_attempts = max_attempts
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; every write below is one statement, one transaction.
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", isolation_level=None)
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise NalarcError(f"the request journal {path} is in use by another server") from None
            raise NalarcError(f"cannot open the request journal {path}: {exc}") from None

    # -- writes ------------------------------------------------------------------

    def accept(self, run_id: str, workflow: str, inputs: dict[str, Any], session: str,
               idempotency_key: str | None, now: float | None = None) -> None:
        """Record an accepted request (committed when this returns)."""
        self._db.execute(
            "INSERT INTO requests (run_id, workflow, inputs, session, idempotency_key, status, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, 'accepted', ?)",
            (run_id, workflow, canonical_json(inputs), session, idempotency_key, time.time() if now is None else now))

    def finish(self, run_id: str, status: Status, outcome: Any, now: float | None = None) -> None:
        """Record the outcome of ``run_id`` and forget its calls (one transaction, committed when this returns).

        A finished request never runs again, so its journaled calls are of no further use.
        """
        if status == "accepted":
            raise ValueError("finish with done or failed")
        outcome_json = canonical_json(outcome)
        with self._transaction():
            self._db.execute("UPDATE requests SET status = ?, outcome = ?, finished_at = ? WHERE run_id = ?",
                             (status, outcome_json, time.time() if now is None else now, run_id))
            self._db.execute("DELETE FROM calls WHERE run_id = ?", (run_id,))

    # -- events and interrupts ------------------------------------------------------

    def add_events(self, run_id: str, events: list[tuple[int, str, str]]) -> None:
        """Events ``(id, type, JSON data)`` of a run, in one transaction (committed when this returns)."""
        if len(events) == 1:
            self._db.execute("INSERT INTO events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
                             (run_id, *events[0]))
            return
        with self._transaction():
            self._db.executemany("INSERT INTO events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
                                 [(run_id, *event) for event in events])

    def events_after(self, run_id: str, after: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        """The run's events with an id above ``after``, in order: ``(id, type, JSON data)``."""
        rows = self._db.execute("SELECT seq, event, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq "
                                "LIMIT ?", (run_id, after, limit)).fetchall()
        return [(int(seq), str(event), str(data)) for seq, event, data in rows]

    def last_event(self, run_id: str) -> int:
        """The id of the run's last event (0: none)."""
        row = self._db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0] or 0)

    def pause(self, run_id: str, key: str, payload: Any) -> None:
        """The run stopped at ``nalarc.interrupt`` (call key ``key``) with ``payload``."""
        self._db.execute("INSERT OR REPLACE INTO interrupts (run_id, call_key, payload) VALUES (?, ?, ?)",
                         (run_id, key, canonical_json(payload)))

    def interrupted(self) -> dict[str, tuple[str, Any]]:
        """Paused runs: run id -> (the interrupt's call key, its payload)."""
        rows = self._db.execute("SELECT run_id, call_key, payload FROM interrupts").fetchall()
        return {str(run_id): (str(key), json.loads(payload)) for run_id, key, payload in rows}

    def resume(self, run_id: str, key: str, value: Any) -> None:
        """Journal the resume ``value`` as the interrupt call's result and unpause the run (one transaction)."""
        with self._transaction():
            self.record(run_id, key, value)
            self._db.execute("DELETE FROM interrupts WHERE run_id = ?", (run_id,))
            self.count_resume(run_id)

    # -- the call journal (nalarc.runtime.lowlevel.CallJournal) -------------------

    def lookup(self, request_id: str, key: str) -> Any:
        """A journaled call's result, or ``STARTED`` (a marker, no result), or ``MISSING``."""
        row = self._db.execute("SELECT value FROM calls WHERE run_id = ? AND call_key = ?",
                               (request_id, key)).fetchone()
        if row is None:
            return MISSING
        if row[0] is None:
            return STARTED
        return cloudpickle.loads(row[0])

    def started(self, request_id: str, key: str) -> None:
        """A call that must run at most once is about to be dispatched (committed when this returns)."""
        self._db.execute("INSERT OR IGNORE INTO calls (run_id, call_key, value) VALUES (?, ?, NULL)",
                         (request_id, key))

    def record(self, request_id: str, key: str, value: Any) -> None:
        """A call's result (committed when this returns); cloudpickle: this file is written by this process only."""
        blob = cloudpickle.dumps(value, protocol=5)
        self._db.execute("INSERT OR REPLACE INTO calls (run_id, call_key, value) VALUES (?, ?, ?)",
                         (request_id, key, blob))

    def call_count(self, run_id: str | None = None) -> int:
        """Journaled calls (markers included), of one run or all."""
        if run_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM calls").fetchone()
        else:
            row = self._db.execute("SELECT COUNT(*) FROM calls WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def count_resume(self, run_id: str) -> None:
        self._db.execute("UPDATE requests SET attempts = attempts + 1 WHERE run_id = ?", (run_id,))

    def uncount_attempt(self, run_id: str) -> None:
        """The run was stopped by a graceful shutdown: it does not count towards ``max_attempts``.

        ``attempts`` counts the runs of a request that ended in a crash or are still
        going; only a request that keeps crashing the server is a poison request.
        """
        self._db.execute("UPDATE requests SET attempts = MAX(attempts - 1, 0) WHERE run_id = ?", (run_id,))

    def prune(self, now: float | None = None) -> int:
        """Drop finished requests past the retention or beyond the newest ``max_runs``; how many."""
        cutoff = (time.time() if now is None else now) - self.retention
        old = self._db.execute("DELETE FROM requests WHERE status != 'accepted' AND finished_at < ?", (cutoff,))
        extra = self._db.execute(
            "DELETE FROM requests WHERE status != 'accepted' AND seq NOT IN "
            "(SELECT seq FROM requests WHERE status != 'accepted' ORDER BY finished_at DESC, seq DESC LIMIT ?)",
            (self.max_runs,))
        # finish() drops a request's calls; calls of a request no longer journaled (say, a row removed
        # by hand) would otherwise stay forever
        self._db.execute("DELETE FROM calls WHERE run_id NOT IN (SELECT run_id FROM requests)")
        self._db.execute("DELETE FROM events WHERE run_id NOT IN (SELECT run_id FROM requests)")
        self._db.execute("DELETE FROM interrupts WHERE run_id NOT IN (SELECT run_id FROM requests)")
        return old.rowcount + extra.rowcount

    # -- reads -------------------------------------------------------------------

    def get(self, run_id: str) -> Entry | None:
        return self._one("run_id = ?", run_id)

    def by_key(self, idempotency_key: str) -> Entry | None:
        return self._one("idempotency_key = ?", idempotency_key)

    def unfinished(self) -> list[Entry]:
        """Accepted requests without an outcome and not paused, oldest first."""
        return list(self._entries("status = 'accepted' AND run_id NOT IN (SELECT run_id FROM interrupts) ORDER BY seq"))

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def close(self) -> None:
        self._db.close()

    def _one(self, where: str, value: str) -> Entry | None:
        return next(self._entries(where, (value,)), None)

    def _entries(self, where: str, args: tuple[Any, ...] = ()) -> Iterator[Entry]:
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM requests WHERE {where}", args).fetchall():
            run_id, workflow, inputs, session, key, status, outcome, accepted_at, finished_at, attempts = row
            yield Entry(run_id, workflow, json.loads(inputs), session, key, status,
                        None if outcome is None else json.loads(outcome), accepted_at, finished_at, attempts)
