"""Concurrency keys on real worker processes: calls with the same key never overlap, other keys run in parallel."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

import nalarc
from nalarc import ConcurrencyLimit, FlowConfig, KeyedCall, load_app
from nalarc.executor import Placement, open_service
from nalarc.executor._backend import ControlledBackend
from nalarc.executor._concurrency import ConcurrencyKeys
from nalarc.executor._instance import QueuedCall
from nalarc.executor._statestore import StateStore

APP = '''
import time
import nalarc

@nalarc.tool
def step(i, user="u"):
    start = time.time()
    time.sleep(0.15)
    return [nalarc.current_session(), start, time.time()]

@nalarc.tool
def free_step(i):
    start = time.time()
    time.sleep(0.15)
    return [nalarc.current_session(), start, time.time()]

@nalarc.workflow
def steps(n):
    return [step(i) for i in range(n)] + [free_step(i) for i in range(n)]

@nalarc.workflow
def by_user(users):
    return [step(i, user=u) for i, u in enumerate(users)]
'''


def _overlap(a: list[Any], b: list[Any]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def _any_overlap(runs: list[list[Any]]) -> bool:
    return any(_overlap(a, b) for i, a in enumerate(runs) for b in runs[i + 1:])


@pytest.fixture
def app(tmp_path: Path) -> nalarc.executor.LoadedApp:
    (tmp_path / "keys_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(tmp_path / "keys_app.py", out_dir=tmp_path / "build")


def _run(app: nalarc.executor.LoadedApp, limit: ConcurrencyLimit, requests: list[tuple[str, dict[str, Any], str]]
         ) -> list[Any]:
    async def main() -> list[Any]:
        placement = Placement(workers=2, instances={"step": 2}, flow=FlowConfig(concurrency=(limit,)))
        async with open_service(app, StateStore(None), placement) as service:
            results: list[Any] = [None] * len(requests)

            async def one(i: int, workflow: str, inputs: dict[str, Any], session: str) -> None:
                results[i] = await service.run(workflow, inputs, session=session)

            async with trio.open_nursery() as nursery:
                for i, request in enumerate(requests):
                    nursery.start_soon(one, i, *request)
            assert service.backend.keys is not None and service.backend.keys.waiting() == 0  # type: ignore[union-attr]
            return results

    return trio.run(main)


def test_one_call_per_session_at_a_time_while_sessions_run_in_parallel(app: nalarc.executor.LoadedApp) -> None:
    a, b = _run(app, ConcurrencyLimit(1, "session", ("step",)), [("steps", {"n": 3}, "a"), ("steps", {"n": 3}, "b")])
    assert not _any_overlap(a[:3]) and not _any_overlap(b[:3])  # one session's steps: one after another
    assert any(_overlap(x, y) for x in a[:3] for y in b[:3])  # the two sessions': side by side
    assert _any_overlap(a[3:])  # a component no limit governs runs its calls at once (the check can fail)


def test_a_key_from_an_argument_or_a_function(app: nalarc.executor.LoadedApp) -> None:
    users = ["ann", "bob", "ann", "bob"]
    for key in ("arg:user", lambda call: call.kwargs.get("user")):
        runs = _run(app, ConcurrencyLimit(1, key, ("step",)), [("by_user", {"users": users}, "s")])[0]
        ann = [r for r, u in zip(runs, users) if u == "ann"]
        bob = [r for r, u in zip(runs, users) if u == "bob"]
        assert not _overlap(*ann) and not _overlap(*bob) and any(_overlap(x, y) for x in ann for y in bob)


def test_a_limit_validates_its_settings() -> None:
    for bad in ({"limit": 0}, {"limit": 1, "key": "sessions"}, {"limit": 1, "key": "arg:"}, {"limit": 1, "key": 3}):
        with pytest.raises(nalarc.NalarcError):
            ConcurrencyLimit(**bad)  # type: ignore[arg-type]
    assert ConcurrencyLimit(2, lambda c: c.session).key(KeyedCall("s", "step", None, (), {})) == "s"  # type: ignore[operator,misc]


TIMEOUT_APP = '''
import os
import time
import nalarc

def _note(log, tag):
    with open(log, "a", encoding="utf-8") as out:  # the side effect a call that never runs must not have
        out.write(tag + "\\n")

@nalarc.tool
def hold(log, flag):
    _note(log, "hold")
    deadline = time.monotonic() + 20
    while not os.path.exists(flag) and time.monotonic() < deadline:  # holds the key until the test says
        time.sleep(0.01)
    return "held"

@nalarc.tool(timeout=0.2)
def hasty(log):
    _note(log, "hasty")
    return "hasty"

@nalarc.tool
def patient(log):
    _note(log, "patient")
    return "patient"

@nalarc.workflow
def run_hold(log, flag):
    return hold(log, flag)

@nalarc.workflow
def run_hasty(log):
    return hasty(log)

@nalarc.workflow
def run_patient(log):
    return patient(log)
'''


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` with a deadline generous enough for a loaded machine."""
    with trio.move_on_after(20):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"gave up waiting until {what}")


def test_a_call_that_times_out_waiting_for_its_key_never_runs_and_the_next_waiter_gets_the_key(
        tmp_path: Path) -> None:
    (tmp_path / "timeout_app.py").write_text(textwrap.dedent(TIMEOUT_APP), encoding="utf-8")
    app = load_app(tmp_path / "timeout_app.py", out_dir=tmp_path / "build")
    log, flag = tmp_path / "calls.log", tmp_path / "release"
    limit = ConcurrencyLimit(1, "global", ("hold", "hasty", "patient"))

    async def main() -> dict[str, Any]:
        placement = Placement(workers=1, flow=FlowConfig(concurrency=(limit,)))
        async with open_service(app, StateStore(None), placement) as service:
            backend = service.backend
            assert isinstance(backend, ControlledBackend) and backend.keys is not None
            keys = backend.keys
            out: dict[str, Any] = {}

            async def run(name: str, inputs: dict[str, Any]) -> None:
                try:
                    out[name] = await service.run(name, inputs, session=name)
                except TimeoutError as error:
                    out[name] = error

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "run_hold", {"log": str(log), "flag": str(flag)})
                await _until(lambda: keys.held() == 1, "hold takes the key")
                nursery.start_soon(run, "run_hasty", {"log": str(log)})
                await _until(lambda: keys.waiting() == 1, "hasty waits for it")
                nursery.start_soon(run, "run_patient", {"log": str(log)})
                await _until(lambda: "run_hasty" in out, "hasty times out")
                out["waiting after the timeout"] = keys.waiting()
                flag.touch()  # hold gives the key back: patient is next, hasty is gone
            out["waiting at the end"] = keys.waiting()
            return out

    out = trio.run(main)
    assert isinstance(out["run_hasty"], TimeoutError)
    assert out["waiting after the timeout"] == 1  # only patient: hasty left the key's queue
    assert out["run_hold"] == "held" and out["run_patient"] == "patient"
    assert out["waiting at the end"] == 0
    # patient ran after hold gave the key back; had hasty been dispatched, it would have run before patient
    assert log.read_text(encoding="utf-8").split() == ["hold", "patient"]


def _entry(name: str) -> QueuedCall:
    """A queued call of component ``name`` as the keys see it (a "global" key reads only the name)."""
    call = SimpleNamespace(spec=SimpleNamespace(name=name))
    return QueuedCall(call, priority=0, created=0.0)  # type: ignore[arg-type]


def test_a_withdrawn_waiter_is_skipped_and_a_re_entrant_release_deletes_the_queue_once() -> None:
    """Pure unit test of :class:`ConcurrencyKeys`: the dispatch of a waiter may release a key again."""
    keys = ConcurrencyKeys((ConcurrencyLimit(1, "global", ("t",)),))
    first, hasty, second, third = (_entry("t") for _ in range(4))
    dispatched: list[QueuedCall] = []

    def dispatch(entry: QueuedCall) -> None:
        dispatched.append(entry)
        if entry is second:  # its outcome is delivered at once: it releases while first's release hands on
            keys.release(entry, dispatch)

    for entry in (first, hasty, second, third):
        keys.submit(entry, dispatch)
    assert dispatched == [first] and keys.waiting() == 3
    assert keys.withdraw(hasty) and not keys.withdraw(hasty) and not keys.withdraw(first)
    keys.release(first, dispatch)
    assert dispatched == [first, second, third]  # hasty never; third got the key second gave back
    assert keys.waiting() == 0 and keys.held() == 1
    keys.release(third, dispatch)
    assert keys.held() == 0 and not keys._waiting and not keys._waits_for and not keys._active
