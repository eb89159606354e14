"""Managed state persisted per (session, agent) in SQLite (WAL).

A call loads a private copy of its session's state and commits it atomically
only when it succeeds.  ``path=None`` keeps the state in memory.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS managed_state (
    session TEXT NOT NULL,
    agent TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (session, agent)
)
"""


class StateStore:
    """Managed state of every session; thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def load(self, session: str, agent: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM managed_state WHERE session = ? AND agent = ?", (session, agent)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def commit(self, session: str, agent: str, values: dict[str, Any]) -> None:
        """Write all of ``values`` at once (a failed call never gets here)."""
        data = json.dumps(values)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO managed_state (session, agent, data, version) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (session, agent) DO UPDATE SET data = excluded.data, "
                "version = managed_state.version + 1",
                (session, agent, data),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
