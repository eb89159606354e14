"""Managed state under load: 200 sessions x 10 steps, migrated midway, then a restart."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import trio

import nalarc
from nalarc import load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._controller import GlobalController
from nalarc.executor._process import ProcessBackend
from nalarc.executor._statestore import StateStore
from nalarc.policies import Control, MetricsView, Policy

APP = '''
import time
import nalarc

@nalarc.agent(max_instances=2)
class Ledger:
    entries = nalarc.ManagedList()
    totals = nalarc.ManagedDict()

    def record(self, step, amount):
        time.sleep(0.001)
        self.entries.append(step)
        self.totals["sum"] = self.totals.get("sum", 0) + amount
        return [len(self.entries), self.totals["sum"], nalarc.current_session()]

@nalarc.workflow
def turn(step, amount):
    return Ledger().record(step, amount)
'''

SESSIONS, STEPS = 200, 10


def amount(session: int, step: int) -> int:
    return (session * 7 + step * 3) % 11


def oracle(app_path: Path) -> dict[str, list[Any]]:
    """The plain-Python answer, session by session."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ledger_plain", app_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out: dict[str, list[Any]] = {}
    for s in range(SESSIONS):
        with nalarc.session(f"s{s}"):
            out[f"s{s}"] = [module.turn(step, amount(s, step)) for step in range(STEPS)]
    return out


class Idle(Policy):
    name = "idle"

    def step(self, view: MetricsView, control: Control) -> None:
        pass


def test_sessions_under_load_with_migration_and_restart(tmp_path: Path) -> None:
    app_path = tmp_path / "ledger_app.py"
    app_path.write_text(textwrap.dedent(APP), encoding="utf-8")
    expected = oracle(app_path)
    app = load_app(app_path, out_dir=tmp_path / "build")
    db = tmp_path / "state.db"
    got: dict[str, list[Any]] = {f"s{s}": [] for s in range(SESSIONS)}
    migrated: list[bool] = []

    async def session_loop(service: Service, s: int, halfway: trio.Event, all_half: list[int]) -> None:
        for step in range(STEPS):
            if step == STEPS // 2:
                all_half[0] += 1
                if all_half[0] == SESSIONS:
                    halfway.set()
                await halfway.wait()  # every session pauses midway while half of them migrate
            got[f"s{s}"].append(await service.run("turn", {"step": step, "amount": amount(s, step)}, f"s{s}"))

    async def main() -> None:
        placement = Placement(workers=2, default_instances=2)
        async with open_service(app, StateStore(db), placement) as service:
            backend = service.backend
            assert isinstance(backend, ProcessBackend)
            control = GlobalController(backend, Idle())
            halfway, counter = trio.Event(), [0]
            async with trio.open_nursery() as nursery:
                for s in range(SESSIONS):
                    nursery.start_soon(session_loop, service, s, halfway, counter)
                await halfway.wait()
                for s in range(0, SESSIONS, 2):
                    home = backend.sticky[(f"s{s}", "ledger_app:Ledger")]
                    other = "Ledger#1" if home == "Ledger#0" else "Ledger#0"
                    migrated.append(control.migrate(f"s{s}", home, other))

    trio.run(main)
    assert len(migrated) == SESSIONS // 2 and all(migrated)
    assert got == expected

    async def after_restart() -> list[Any]:
        async with open_service(app, StateStore(db), Placement(workers=2)) as service:
            return [await service.run("turn", {"step": STEPS, "amount": 1}, f"s{s}") for s in (0, 1, 199)]

    resumed = trio.run(after_restart)
    for (length, total, session), s in zip(resumed, (0, 1, 199)):
        assert length == STEPS + 1 and session == f"s{s}"
        assert total == expected[f"s{s}"][-1][1] + 1


HUNG_APP = '''
import time
import nalarc

@nalarc.agent(timeout=0.4)
class Notes:
    items = nalarc.ManagedList()

    def add(self, item, seconds):
        self.items.append(item)
        time.sleep(seconds)  # a hung call: returns only after its timeout
        return list(self.items)

    def read(self):
        return list(self.items)

@nalarc.workflow
def add(item, seconds=0.0):
    return Notes().add(item, seconds)

@nalarc.workflow
def read():
    return Notes().read()
'''


def test_a_call_that_times_out_has_its_managed_state_writes_discarded(tmp_path: Path) -> None:
    """The hung call fails with ``TimeoutError``; when it returns later, its writes are dropped,
    not committed over the calls that ran meanwhile."""
    (tmp_path / "hung_app.py").write_text(textwrap.dedent(HUNG_APP), encoding="utf-8")
    app = load_app(tmp_path / "hung_app.py", out_dir=tmp_path / "build")

    async def main() -> dict[str, Any]:
        async with open_service(app, StateStore(None), Placement(workers=1, instances={"Notes": 2})) as service:
            out: dict[str, Any] = {"first": await service.run("add", {"item": "a"}, "s")}
            try:
                await service.run("add", {"item": "hung", "seconds": 1.2}, "s")
            except TimeoutError as exc:
                out["timeout"] = exc
            out["meanwhile"] = await service.run("add", {"item": "b"}, "s")
            await trio.sleep(1.2)  # the hung call has returned by now
            out["after"] = await service.run("read", {}, "s")
            return out

    out = trio.run(main)
    assert out["first"] == ["a"]
    assert "timed out after 0.4 s" in str(out["timeout"])
    assert out["meanwhile"] == ["a", "b"]
    assert out["after"] == ["a", "b"]
