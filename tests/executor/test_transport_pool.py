"""The backend interface: the controllers and routing run unchanged over a pool that is not processes.

``ThreadPool`` is the Ray pool (``_ray.RayPool``) in miniature: workers that
are not this machine's processes (here, nalarc's worker code on trio worker
threads), messages that come back when they are done.  It implements only
``WorkerPool``; nothing else in the executor knows about it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from nalarc import load_app
from nalarc._api import ComponentSpec
from nalarc._errors import PolicyError
from nalarc.executor import Placement, Service
from nalarc.executor._backend import ControlledBackend, PoolEvents, fewest_hosted
from nalarc.executor._process import app_components
from nalarc.executor._statestore import StateStore
from nalarc.wire import dumps, loads
from nalarc.worker import Worker

APP = '''
import nalarc

@nalarc.tool
def double(x):
    return x * 2

@nalarc.tool
def fail(x):
    raise KeyError(x)

@nalarc.agent(max_instances=3)
class Counter:
    def __init__(self):
        self.seen = 0

    def add(self, x):
        self.seen += 1
        return x + 100

@nalarc.workflow
def chain(x):
    return Counter().add(double(double(x)))

@nalarc.workflow
def broken(x):
    return double(fail(x))
'''


class _Replies:
    """The worker's channel: what it sends goes back to the pool's events."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_bytes(self, payload: bytes) -> None:
        self.sent.append(payload)

    def send(self, message: tuple[Any, ...]) -> None:
        self.sent.append(dumps(message))


class ThreadWorker:
    def __init__(self, worker_id: str) -> None:
        self.id, self.alive, self.pid = worker_id, True, 0
        self.replies = _Replies()
        self.code = Worker(self.replies)  # type: ignore[arg-type]  # a channel is all it needs


class ThreadPool:
    """A ``WorkerPool`` whose workers run on threads of this process."""

    def __init__(self, count: int) -> None:
        self._workers = {f"t{i}": ThreadWorker(f"t{i}") for i in range(count)}
        self.sent = 0

    @property
    def workers(self) -> Mapping[str, ThreadWorker]:
        return self._workers

    async def start(self, nursery: trio.Nursery, events: PoolEvents[ThreadWorker]) -> None:
        self._nursery, self._events = nursery, events

    def place(self, spec: ComponentSpec, node: str | None, hosted: Mapping[str, int]) -> ThreadWorker:
        return fewest_hosted(self._workers, node, hosted)

    def send(self, worker: ThreadWorker, message: tuple[Any, ...], user: tuple[Any, ...] | None = None) -> None:
        self.sent += 1
        self._nursery.start_soon(self._serve, worker, loads(dumps(message, user)))

    async def _serve(self, worker: ThreadWorker, message: tuple[Any, ...]) -> None:
        await trio.to_thread.run_sync(worker.code.handle, message)
        replies, worker.replies.sent[:] = list(worker.replies.sent), []
        for payload in replies:
            self._events.received(worker, loads(payload))

    async def aclose(self) -> None:
        pass


def _run(tmp_path: Path, requests: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], ThreadPool, Any]:
    (tmp_path / "pool_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "pool_app.py", out_dir=tmp_path / "build")
    pool = ThreadPool(2)

    async def main() -> tuple[list[Any], Any]:
        async with trio.open_nursery() as nursery:
            backend = ControlledBackend(StateStore(None), Placement(workers=2), pool)
            await backend.start(nursery, app_components(app.modules))
            service = Service(app, backend)  # type: ignore[arg-type]  # any backend with a runtime
            outcomes: list[Any] = []
            for workflow, inputs in requests:
                try:
                    outcomes.append(await service.run(workflow, inputs, "s"))
                except Exception as error:  # noqa: BLE001 - compared below
                    outcomes.append(error)
            hosts = {i: c.worker.id for i, c in backend.instances.items()}
            nursery.cancel_scope.cancel()
            return outcomes, hosts

    outcomes, hosts = trio.run(main)
    return outcomes, pool, hosts


def test_the_controllers_run_over_another_pool(tmp_path: Path) -> None:
    outcomes, pool, hosts = _run(tmp_path, [("chain", {"x": 1}), ("chain", {"x": 5})])
    assert outcomes == [104, 120]
    assert set(hosts.values()) == {"t0", "t1"}  # the pool placed the instances
    assert pool.sent >= 6  # every call went through its send


def test_failures_cross_another_pool_unchanged(tmp_path: Path) -> None:
    (error,), _, _ = _run(tmp_path, [("broken", {"x": 3})])
    assert isinstance(error, KeyError) and error.args == (3,)
    assert "remote traceback" in "".join(getattr(error, "__notes__", []))


def test_provision_asks_the_pool_where(tmp_path: Path) -> None:
    (tmp_path / "pool_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "pool_app.py", out_dir=tmp_path / "build")
    pool = ThreadPool(2)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            backend = ControlledBackend(StateStore(None), Placement(workers=2), pool)
            await backend.start(nursery, app_components(app.modules))
            added = backend.provision("Counter", "t1")
            assert added is not None and backend.instances[added].worker is pool.workers["t1"]
            with pytest.raises(PolicyError, match="no worker 'nowhere'"):
                backend.provision("Counter", "nowhere")
            nursery.cancel_scope.cancel()

    trio.run(main)
