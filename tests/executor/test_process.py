"""Worker supervision on real processes: restarts, their backoff, poison calls."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from nalarc import BrokenWorkerError, load_app
from nalarc.executor import Placement, open_service
from nalarc.executor._process import ProcessBackend, RestartBackoff
from nalarc.executor._statestore import StateStore

APP = '''
import os
import signal
import nalarc

@nalarc.tool(idempotent=True)
def poison(x):
    os.kill(os.getpid(), signal.SIGKILL)  # kills every worker it reaches

@nalarc.tool
def double(x):
    return 2 * x

@nalarc.workflow
def eat(x):
    return poison(x)

@nalarc.workflow
def healthy(x):
    return double(x)
'''


class _Died:
    def __init__(self, worker_id: str, started: float) -> None:
        self.id, self.started = worker_id, started


def _delays(backoff: RestartBackoff, deaths: list[tuple[str, float, float]]) -> list[float]:
    return [backoff.delay(_Died(w, started), now) for w, started, now in deaths]  # type: ignore[arg-type]


def test_the_first_restart_is_immediate_then_quick_deaths_back_off() -> None:
    backoff = RestartBackoff(first=0.25, cap=2.0, stable=10.0)
    quick = [("w0", 0.0, 1.0)] * 6
    assert _delays(backoff, quick) == [0.0, 0.25, 0.5, 1.0, 2.0, 2.0]


def test_a_worker_that_lived_long_enough_starts_the_count_afresh() -> None:
    backoff = RestartBackoff(first=0.25, cap=2.0, stable=10.0)
    assert _delays(backoff, [("w0", 0.0, 1.0), ("w0", 1.0, 2.0), ("w0", 2.0, 30.0), ("w0", 30.0, 31.0)]) == [
        0.0, 0.25, 0.0, 0.0]


def test_workers_back_off_independently() -> None:
    backoff = RestartBackoff(first=0.25, cap=2.0, stable=10.0)
    assert _delays(backoff, [("w0", 0.0, 1.0), ("w0", 1.0, 2.0), ("w1", 0.0, 2.0), ("w0", 2.0, 3.0)]) == [
        0.0, 0.25, 0.0, 0.5]


@pytest.mark.slow
def test_a_poison_call_is_rerun_a_bounded_number_of_times_then_fails_typed(tmp_path: Path) -> None:
    """An idempotent call that kills its worker: ``rerun_after_crash`` re-runs, then ``BrokenWorkerError``;
    the restarts after the first wait (no restart storm) and the service goes on serving."""
    (tmp_path / "poison_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "poison_app.py", out_dir=tmp_path / "build")

    async def main() -> dict[str, Any]:
        placement = Placement(workers=1, rerun_after_crash=2)
        async with open_service(app, StateStore(None), placement) as service:
            backend = service.backend
            assert isinstance(backend, ProcessBackend)
            started = trio.current_time()
            with pytest.raises(BrokenWorkerError) as caught:
                await service.run("eat", {"x": 1}, "s")
            failed_after = trio.current_time() - started
            pool = backend.pool
            restarts, delayed = pool.restarts, pool.delayed_restarts
            answer = await service.run("healthy", {"x": 21}, "s")
            return {"error": caught.value, "restarts": restarts, "delayed": delayed,
                    "seconds": failed_after, "answer": answer}

    out = trio.run(main)
    assert out["error"].component.endswith("poison") and out["error"].signal == 9
    assert out["restarts"] == 3  # one per attempt: the first run and its 2 re-runs
    # The first restart was immediate; the second waited 0.25 s before the last re-run;
    # the third (0.5 s) is after the call failed.
    assert out["delayed"] == 2
    assert out["seconds"] >= 0.25
    assert out["answer"] == 42
