"""Every component call of a run as Chrome trace events (opens in Perfetto).

One complete event (``ph: "X"``) per call: its name is the component (and
method), it sits on the lane of the instance that ran it (``pid`` = worker
process, ``tid`` = instance), and ``args`` say who made it (session,
request, stage), how long it queued, and which futures it depended on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Tracer:
    """Collects call events; ``write`` saves them as Chrome trace JSON."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _lanes: dict[tuple[int, str], int] = field(default_factory=dict)
    _processes: dict[int, str] = field(default_factory=dict)

    def call(
        self,
        *,
        future: str,
        label: str,
        instance: str,
        process: int,
        process_name: str,
        created: float,
        started: float,
        finished: float,
        session: str,
        request: str,
        stage: int,
        depends_on: list[str],
        ok: bool,
    ) -> None:
        lane = self._lanes.setdefault((process, instance), len(self._lanes) + 1)
        self._processes.setdefault(process, process_name)
        self.events.append({
            "name": label,
            "cat": "call" if ok else "call,failed",
            "ph": "X",
            "ts": round(started * 1e6, 1),
            "dur": round(max(finished - started, 0.0) * 1e6, 1),
            "pid": process,
            "tid": lane,
            "args": {
                "future": future,
                "instance": instance,
                "session": session,
                "request": request,
                "stage": stage,
                "queue_ms": round((started - created) * 1000, 3),
                "depends_on": depends_on,
                "ok": ok,
            },
        })

    def document(self) -> dict[str, Any]:
        meta: list[dict[str, Any]] = []
        for pid, name in self._processes.items():
            meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
        for (pid, instance), lane in self._lanes.items():
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": lane, "args": {"name": instance}})
        return {"traceEvents": meta + sorted(self.events, key=lambda e: e["ts"]), "displayTimeUnit": "ms"}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document()), encoding="utf-8")


def driver_pid() -> int:
    return os.getpid()
