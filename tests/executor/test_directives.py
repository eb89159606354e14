"""batchable merges queued calls; preemptable makes room for urgent calls (real workers)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import trio

from nalarc import load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._controller import GlobalController
from nalarc.executor._process import ProcessBackend
from nalarc.executor._statestore import StateStore
from nalarc.policies import Control, MetricsView, Policy

APP = '''
import threading
import time
import nalarc

class Preempted(Exception):
    pass

@nalarc.agent(batchable=True)
class Developer:
    def implement(self, task, level=1):
        time.sleep(0.05)
        return f"{task}:{level}:single"

    def implement_batch(self, calls):
        time.sleep(0.05)  # one batched LLM call for all of them
        return [f"{c['task']}:{c.get('level', 1)}:batch{len(calls)}" for c in calls]

@nalarc.agent(batchable=True)
class Plain:
    def echo(self, x):
        time.sleep(0.05)
        return x

@nalarc.agent(preemptable="interrupt")
class Worker:
    def __init__(self):
        self.stop = threading.Event()

    def interrupt(self):
        self.stop.set()

    def work(self, name, seconds):
        self.stop.clear()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop.is_set():
                raise Preempted(name)
            time.sleep(0.01)
        return [name, time.monotonic()]

@nalarc.workflow
def develop(tasks):
    return [Developer().implement(t, level=i) for i, t in enumerate(tasks)]

@nalarc.workflow
def echo_all(xs):
    return [Plain().echo(x) for x in xs]

@nalarc.workflow
def work(name, seconds):
    return Worker().work(name, seconds)
'''


class Idle(Policy):
    name = "idle"

    def step(self, view: MetricsView, control: Control) -> None:
        pass


def serve(tmp_path: Path, body: Any, **placement: Any) -> Any:
    (tmp_path / "dir_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "dir_app.py", out_dir=tmp_path / "build")

    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(**{"workers": 1, **placement})) as service:
            assert isinstance(service.backend, ProcessBackend)
            return await body(service, service.backend)

    return trio.run(main)


def test_batchable_agent_gets_merged_calls(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> list[Any]:
        results = await service.run("develop", {"tasks": ["a", "b", "c", "d", "e"]})
        plain = await service.run("echo_all", {"xs": [1, 2, 3, 4]})
        developer = next(c for c in backend.instances.values() if c.spec.name == "Developer")
        assert developer.completed == 5 and developer.batches < 5
        return [results, plain]

    results, plain = serve(tmp_path, body, agent_concurrency=1)
    # every call got its own answer, and calls queued together went out as one batch
    assert [r.rsplit(":", 1)[0] for r in results] == ["a:0", "b:1", "c:2", "d:3", "e:4"]
    sizes = [int(r.rsplit("batch", 1)[1]) for r in results if "batch" in r]
    assert sizes and max(sizes) >= 2 and all(sizes.count(n) % n == 0 for n in set(sizes))
    assert plain == [1, 2, 3, 4]  # no <method>_batch: the batch's calls run one by one


def test_preemptable_agent_makes_room_for_a_higher_priority_call(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> dict[str, Any]:
        control = GlobalController(backend, Idle())
        control.set_priority("vip", 10)
        done: dict[str, Any] = {}

        async def one(session: str, name: str, seconds: float) -> None:
            done[name] = await service.run("work", {"name": name, "seconds": seconds}, session)
            done[name].append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "bulk", "long", 1.0)
            await trio.sleep(0.3)
            nursery.start_soon(one, "vip", "urgent", 0.1)
        return done

    done = serve(tmp_path, body, agent_concurrency=1)
    assert done["long"][0] == "long" and done["urgent"][0] == "urgent"
    assert done["urgent"][2] < done["long"][2]  # the urgent call did not wait for the long one
