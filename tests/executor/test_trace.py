"""--trace-out: every call, where it ran, its queue time and its dependencies."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nalarc import load_app
from nalarc.executor import Placement, run_requests
from nalarc.executor._trace import Tracer

APP = '''
import time
import nalarc

@nalarc.tool
def fetch(i):
    time.sleep(0.05)
    return i

@nalarc.agent
class Joiner:
    def join(self, parts):
        return sum(parts)

@nalarc.workflow
def main(n):
    parts = [fetch(i) for i in range(n)]
    return Joiner().join(parts)
'''


@pytest.mark.parametrize("workers", [0, 2])
def test_trace_has_every_call_with_its_dependencies(tmp_path: Path, workers: int) -> None:
    (tmp_path / "trace_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "trace_app.py", out_dir=tmp_path / "build")
    tracer = Tracer()
    [outcome] = run_requests(app, [("main", {"n": 3}, "s")], placement=Placement(workers=workers, tracer=tracer))
    assert outcome.unwrap() == 3
    tracer.write(tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text())
    calls = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["name"] for e in calls) == ["Joiner.join", "fetch", "fetch", "fetch"]
    fetch_ids = {e["args"]["future"] for e in calls if e["name"] == "fetch"}
    join = next(e for e in calls if e["name"] == "Joiner.join")
    assert set(join["args"]["depends_on"]) == fetch_ids
    assert all(e["dur"] > 0 and e["args"]["session"] == "s" and e["args"]["ok"] for e in calls)
    # the join starts after every fetch ended
    assert all(join["ts"] >= e["ts"] + e["dur"] for e in calls if e["name"] == "fetch")
    lanes = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert lanes >= {"Joiner#0"} if workers else lanes >= {"Joiner", "fetch"}
