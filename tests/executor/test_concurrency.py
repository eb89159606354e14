"""Concurrency keys on real worker processes: calls with the same key never overlap, other keys run in parallel."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import nalarc
from nalarc import ConcurrencyLimit, FlowConfig, KeyedCall, load_app
from nalarc.executor import Placement, open_service
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
