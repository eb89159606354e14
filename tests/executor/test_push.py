"""Push readiness on real worker processes: a value goes from the worker that produced it to the
worker whose call needs it, without passing through the driver; migrations and failures in between.

Placement in every test (3 workers, sorted component keys, fewest instances first):
``Slow#0`` on w0, ``Slow#1`` on w1, ``produce#0`` on w2.
"""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from nalarc import load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._controller import GlobalController
from nalarc.executor._process import ProcessBackend
from nalarc.executor._statestore import StateStore
from nalarc.policies import Control, MetricsView, Policy

APP = '''
import os
import time
import nalarc

@nalarc.tool
def produce(n, seconds=0.0, fail=False):
    time.sleep(seconds)
    if fail:
        raise ValueError(f"no value for {n}")
    return b"v" * n

@nalarc.agent(max_instances=3)
class Slow:
    def work(self, data, seconds=0.0):
        time.sleep(seconds)
        return [len(data), data[:3].decode(), os.getpid()]

    def busy(self, seconds):
        time.sleep(seconds)
        return os.getpid()

@nalarc.workflow
def chain(n, seconds=0.0, fail=False):
    return Slow().work(produce(n, seconds, fail))

@nalarc.workflow
def late(n):
    data = produce(n)
    size = len(data)
    return [size, Slow().work(data)]

@nalarc.workflow
def occupy(seconds):
    return Slow().busy(seconds)
'''

MB = 1024 * 1024


class Idle(Policy):
    name = "idle"

    def step(self, view: MetricsView, control: Control) -> None:
        pass


def run_service(tmp_path: Path, body: Callable[[Service, ProcessBackend], Awaitable[Any]], extra: str = "",
                **placement: Any) -> Any:
    (tmp_path / "push_app.py").write_text(textwrap.dedent(APP) + textwrap.dedent(extra), encoding="utf-8")
    app = load_app(tmp_path / "push_app.py", out_dir=tmp_path / "build")
    settings = {"workers": 3, "instances": {"Slow": 2, "produce": 1}, "agent_concurrency": 1, **placement}

    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(**settings)) as service:
            backend = service.backend
            assert isinstance(backend, ProcessBackend)
            placed = {i: c.worker.id for i, c in backend.instances.items()}
            assert placed == {"Slow#0": "w0", "Slow#1": "w1", "produce#0": "w2"}
            with trio.fail_after(60):
                return await body(service, backend)

    return trio.run(main)


def pid(backend: ProcessBackend, instance: str) -> int:
    return backend.instances[instance].worker.pid


async def held(backend: ProcessBackend, worker_id: str) -> int:
    """Pushed values a worker keeps (waiting for a call that needs them)."""
    return int((await backend.probe(backend.workers[worker_id]))["values"])


async def settle_workers(backend: ProcessBackend) -> list[int]:
    """What every worker holds once the bookkeeping messages in flight have arrived."""
    for _ in range(50):
        counts = [await held(backend, w) for w in ("w0", "w1", "w2")]
        if not any(counts):
            break
        await trio.sleep(0.05)
    return counts


def test_the_value_goes_from_worker_to_worker(tmp_path: Path) -> None:
    """The driver receives the value once and sends only the call (by reference) to the consumer's worker."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        GlobalController(backend, Idle()).route("s", "Slow", "Slow#1")
        to_consumer = backend.workers["w1"].conn
        assert to_consumer is not None
        sent_before = to_consumer.bytes_out
        result = await service.run("chain", {"n": 4 * MB, "seconds": 0.2}, "s")
        assert result == [4 * MB, "vvv", pid(backend, "Slow#1")]
        assert backend.push_stats == {"by_reference": 1, "from_driver": 0}
        assert to_consumer.bytes_out - sent_before < 64 * 1024  # the 4 MB went w2 -> w1 directly
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_without_push_the_driver_forwards_the_value(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> None:
        GlobalController(backend, Idle()).route("s", "Slow", "Slow#1")
        to_consumer = backend.workers["w1"].conn
        assert to_consumer is not None
        sent_before = to_consumer.bytes_out
        assert await service.run("chain", {"n": 4 * MB, "seconds": 0.2}, "s") == [4 * MB, "vvv", pid(backend, "Slow#1")]
        assert backend.push_stats == {"by_reference": 0, "from_driver": 0}
        assert to_consumer.bytes_out - sent_before > 4 * MB

    run_service(tmp_path, body, push=False)


def test_consumer_migrated_before_the_value_is_sent(tmp_path: Path) -> None:
    """The producer is still running: the consumer re-registers, and the value is pushed to the new place."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        control = GlobalController(backend, Idle())
        control.route("s", "Slow", "Slow#1")
        results: dict[str, Any] = {}

        async def run() -> None:
            results["s"] = await service.run("chain", {"n": MB, "seconds": 0.6}, "s")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            while backend.instances["produce#0"].running == 0:
                await trio.sleep(0.01)
            assert control.migrate("s", "Slow#1", "Slow#0")
        assert results["s"] == [MB, "vvv", pid(backend, "Slow#0")]
        assert backend.instances["Slow#1"].completed == 0
        assert backend.push_stats == {"by_reference": 1, "from_driver": 0}
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


async def _queued_consumer(service: Service, backend: ProcessBackend, results: dict[str, Any],
                           nursery: trio.Nursery, size: int) -> None:
    """Slow#0 busy with another session's call; session s's consumer, placed there, queued behind it."""
    control = GlobalController(backend, Idle())
    control.route("other", "Slow", "Slow#0")
    control.route("s", "Slow", "Slow#0")

    async def run(name: str, workflow: str, inputs: dict[str, Any]) -> None:
        results[name] = await service.run(workflow, inputs, name)

    nursery.start_soon(run, "other", "occupy", {"seconds": 1.5})
    while backend.instances["Slow#0"].running == 0:
        await trio.sleep(0.01)
    nursery.start_soon(run, "s", "chain", {"n": size, "seconds": 0.2})  # running when the consumer registers
    while backend.instances["Slow#0"].queue_length == 0:  # its input is ready: queued behind "other"
        await trio.sleep(0)


def test_consumer_migrated_while_the_value_is_in_flight(tmp_path: Path) -> None:
    """Migrated the moment its input is ready, before its copy is known to have arrived: it runs once,
    at the new place, with the value from the driver; the old place drops its copy whenever it lands."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            await _queued_consumer(service, backend, results, nursery, 16 * MB)
            assert GlobalController(backend, Idle()).migrate("s", "Slow#0", "Slow#1")
        assert results["s"] == [16 * MB, "vvv", pid(backend, "Slow#1")]
        assert results["other"] == pid(backend, "Slow#0")
        assert backend.instances["Slow#1"].completed == 1 and backend.instances["Slow#0"].completed == 1
        assert backend.push_stats == {"by_reference": 0, "from_driver": 1}
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_consumer_migrated_after_the_value_was_delivered(tmp_path: Path) -> None:
    """The copy is at the old place: the consumer runs at the new one; the old copy is released."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            await _queued_consumer(service, backend, results, nursery, MB)
            while await held(backend, "w0") == 0:
                await trio.sleep(0.01)
            assert GlobalController(backend, Idle()).migrate("s", "Slow#0", "Slow#1")
        assert results["s"] == [MB, "vvv", pid(backend, "Slow#1")]
        assert backend.push_stats == {"by_reference": 0, "from_driver": 1}
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_small_values_are_not_pushed(tmp_path: Path) -> None:
    """Below 16 KiB a push costs more than the driver sending the value on with the call."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        GlobalController(backend, Idle()).route("s", "Slow", "Slow#1")
        assert await service.run("chain", {"n": 100, "seconds": 0.2}, "s") == [100, "vvv", pid(backend, "Slow#1")]
        assert backend.push_stats == {"by_reference": 0, "from_driver": 1}
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_consumer_made_after_the_value_resolved(tmp_path: Path) -> None:
    """A consumer that registers after its input resolved gets the value (from the driver, which has it)."""

    async def body(service: Service, backend: ProcessBackend) -> None:
        GlobalController(backend, Idle()).route("s", "Slow", "Slow#1")
        assert await service.run("late", {"n": 1000}, "s") == [1000, [1000, "vvv", pid(backend, "Slow#1")]]
        assert backend.push_stats == {"by_reference": 0, "from_driver": 0}  # never placed: it was ready
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_a_failing_producer_fails_its_consumer_without_running_it(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> None:
        GlobalController(backend, Idle()).route("s", "Slow", "Slow#1")
        with pytest.raises(ValueError, match="no value for 7"):
            await service.run("chain", {"n": 7, "seconds": 0.2, "fail": True}, "s")
        assert backend.instances["Slow#1"].completed == backend.instances["Slow#0"].completed == 0
        assert not backend.router.placed and not backend.push.by_session
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body)


def test_many_consumers_of_one_value(tmp_path: Path) -> None:
    """Two consumers on one worker share one push; one on another worker gets its own."""
    app = '''
@nalarc.workflow
def fan(n):
    data = produce(n, 0.3)
    return [Slow().work(data), Slow().work(data), Slow().work(data)]
'''

    async def body(service: Service, backend: ProcessBackend) -> None:
        results = await service.run("fan", {"n": 50_000}, "s")
        assert [r[:2] for r in results] == [[50_000, "vvv"]] * 3
        assert backend.push_stats["by_reference"] == 3
        assert await settle_workers(backend) == [0, 0, 0]

    run_service(tmp_path, body, extra=app, agent_concurrency=4)
