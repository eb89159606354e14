"""The Ray backend: nalarc's worker code in Ray actors (a :class:`~nalarc.executor._pool.WorkerPool` over Ray).

Everything that decides (the component-level controllers, routing, the global
controller and its policies, supervision of calls in flight, managed state)
is the shared core, :class:`~nalarc.executor._backend.ControlledBackend`,
unchanged.  This module is placement and transport only:

* a worker is a Ray actor (``nalarc.worker._actor.WorkerActor``) hosting ``nalarc.worker.Worker``,
  the code a worker process runs, behind a socket pair inside the actor: the
  calls run on the same leader/follower threads, in the same order;
* the app's build directory goes into Ray's object store once and every
  actor's constructor takes it from there, so an actor needs nothing on its
  node but nalarc (any node of the cluster will do);
* ``send``: the messages sent to one worker in one trio tick go out as one
  actor call, ``deliver(seq, payloads)``; the actor puts them in ``seq``
  order (Ray does not promise the order of calls to a threaded actor);
* replies: one ``replies()`` call per worker is always outstanding; it
  returns every message the worker has sent since the last one, and the
  driver hands them to the core in its trio thread;
* a dead actor (its ``replies()`` fails with Ray's actor error) is reported
  to the core (``lost``: its calls are re-run or fail with
  :class:`~nalarc.BrokenWorkerError`) and replaced by a new actor under the
  same id (``replaced``).

Values go through the driver: a Ray worker has no sibling sockets, so push
readiness is off.  Trust is Ray's: messages are pickled bytes inside Ray's own
(pickled) calls, between the processes of the cluster the driver joined.

State (:class:`RayPool`):
    ``workers``  worker id -> :class:`RayWorker` (actor handle, outbox, ``seq``)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from .._api import ComponentSpec
from .._errors import NalarcError
from ..wire import Ready, dumps, loads
from ..worker._actor import WorkerActor
from ._backend import ControlledBackend
from ._pool import Placement, PoolEvents, fewest_hosted
from ._statestore import StateStore

#: Seconds to wait for a new actor to load the app and say it is ready.
_READY_TIMEOUT = 120.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NalarcError("the Ray backend needs Ray: pip install 'nalarc[ray]'") from None
    return ray


class RayWorker:
    """One actor, as the core sees it (``WorkerLike``)."""

    def __init__(self, worker_id: str, handle: Any) -> None:
        self.id, self.handle = worker_id, handle
        self.alive = True
        self.pid = 0  # the actor's process, from its "ready"
        self.ready = trio.Event()
        #: Messages sent in this trio tick, not yet handed to Ray; the number of the next batch.
        self.outbox: list[bytes] = []
        self.seq = 0


def _build_files(build_dir: Path) -> dict[str, bytes]:
    return {
        path.relative_to(build_dir).as_posix(): path.read_bytes()
        for path in sorted(build_dir.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


async def _resolved(ref: Any) -> Any:
    """The value of a Ray object ref, awaited in trio (no thread waits for it)."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    future = ref.future()

    def wake(_: Any) -> None:
        try:
            token.run_sync_soon(done.set)
        except trio.RunFinishedError:
            pass  # the run is over: nobody waits any more

    future.add_done_callback(wake)
    await done.wait()
    return future.result()


class RayPool:
    """Ray actors hosting nalarc's workers: start, supervise, place, talk (see the module docstring)."""

    def __init__(self, build_dir: Path, count: int, address: str | None = None) -> None:
        self.build_dir, self.count, self.address = Path(build_dir), count, address
        #: The build directory's files in Ray's object store: put once, read by every actor started.
        self._files: Any = None
        self._workers: dict[str, RayWorker] = {}
        self._nursery: trio.Nursery | None = None
        self._events: PoolEvents[RayWorker] | None = None
        self._actor_class: Any = None
        self._started_ray = False
        self.closing = False

    @property
    def workers(self) -> Mapping[str, RayWorker]:
        return self._workers

    async def start(self, nursery: trio.Nursery, events: PoolEvents[RayWorker]) -> None:
        """Join (or start) the Ray cluster, start the actors, wait until each has loaded the app."""
        self._nursery, self._events = nursery, events
        ray = _ray()
        if not ray.is_initialized():
            await trio.to_thread.run_sync(self._init_ray, ray)
        # SPREAD: on a cluster, the workers go to different nodes (as worker processes use different cores).
        self._files = ray.put(_build_files(self.build_dir))
        self._actor_class = ray.remote(num_cpus=0, max_restarts=0, concurrency_groups={"deliver": 1},
                                       scheduling_strategy="SPREAD")(WorkerActor)
        for index in range(self.count):
            self._spawn(f"r{index}")
        with trio.fail_after(_READY_TIMEOUT):
            for worker in self._workers.values():
                await worker.ready.wait()

    def _init_ray(self, ray: Any) -> None:
        # A local cluster when no address is given (RAY_ADDRESS, or --ray-address, joins one).
        ray.init(address=self.address or os.environ.get("RAY_ADDRESS") or None,
                 include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        self._started_ray = True

    def _spawn(self, worker_id: str) -> RayWorker:
        worker = RayWorker(worker_id, self._actor_class.remote(worker_id, self._files))
        self._workers[worker_id] = worker
        assert self._nursery is not None
        self._nursery.start_soon(self._reply_loop, worker)
        return worker

    def place(self, spec: ComponentSpec, node: str | None, hosted: Mapping[str, int]) -> RayWorker:
        return fewest_hosted(self._workers, node, hosted)

    def send(self, worker: RayWorker, message: tuple[Any, ...], user: tuple[Any, ...] | None = None) -> None:
        if not worker.alive:
            return
        worker.outbox.append(dumps(message, user))
        if len(worker.outbox) == 1:
            assert self._nursery is not None
            self._nursery.start_soon(self._flush, worker)

    async def _flush(self, worker: RayWorker) -> None:
        """Everything sent to ``worker`` in the last tick, as one actor call."""
        payloads, worker.outbox = worker.outbox, []
        if worker.alive:
            worker.handle.deliver.options(concurrency_group="deliver").remote(worker.seq, payloads)
            worker.seq += 1

    async def _reply_loop(self, worker: RayWorker) -> None:
        ray = _ray()
        assert self._events is not None
        received = self._events.received
        while True:
            try:
                payloads = await _resolved(worker.handle.replies.remote())
            except ray.exceptions.RayError:
                break
            for payload in payloads:
                message = loads(payload)
                if type(message) is Ready:
                    worker.pid = message.pid
                    worker.ready.set()
                else:
                    received(worker, message)
        await self._replace(worker)

    async def _replace(self, worker: RayWorker) -> None:
        """The actor died: report its calls, start a new actor under the same id."""
        worker.alive = False
        if self.closing:
            return
        assert self._events is not None
        self._events.lost(worker, None)
        replacement = self._spawn(worker.id)
        with trio.fail_after(_READY_TIMEOUT):
            await replacement.ready.wait()
        self._events.replaced(worker, replacement)

    async def aclose(self) -> None:
        self.closing = True
        ray = _ray()
        for worker in self._workers.values():
            worker.alive = False
            ray.kill(worker.handle)
        if self._started_ray:
            await trio.to_thread.run_sync(ray.shutdown)


class RayBackend(ControlledBackend[RayWorker]):
    """Component calls on Ray actors: the shared core over a :class:`RayPool`."""

    name = "ray"

    def __init__(self, build_dir: Path, store: StateStore, placement: Placement) -> None:
        super().__init__(store, dataclasses.replace(placement, push=False),
                         RayPool(Path(build_dir), placement.workers, placement.ray_address))
