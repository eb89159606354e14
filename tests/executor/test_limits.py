"""A dynamic fan-out is capped per request: the rest waits, nothing is lost."""

from __future__ import annotations

import textwrap
from pathlib import Path

import trio

from nalarc import load_app
from nalarc.executor._local import InProcessBackend, run_request

APP = '''
import threading
import time
import nalarc

ACTIVE = [0, 0]  # now, peak
LOCK = threading.Lock()

@nalarc.tool
def probe(i):
    with LOCK:
        ACTIVE[0] += 1
        ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])
    time.sleep(0.02)
    with LOCK:
        ACTIVE[0] -= 1
    return i

@nalarc.workflow
def fan_out(n):
    return sum([probe(i) for i in range(n)])
'''


def test_in_flight_calls_per_request_are_capped(tmp_path: Path) -> None:
    (tmp_path / "cap_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "cap_app.py", out_dir=tmp_path / "build")
    backend = InProcessBackend()
    runtime = backend.new_runtime()
    runtime.per_request = 5
    result = trio.run(run_request, app.workflows["fan_out"], {"n": 60}, runtime)
    assert result == sum(range(60))
    assert app.module.ACTIVE[1] == 5
