"""The process backend: worker processes on this machine X.

Topology: the driver (this process) runs compiled workflow code for many
requests under trio, and one component-level controller per instance
(:class:`~nalarc.executor._backend.ControlledBackend`).  ``workers``
processes host the instances.  This module is their placement and transport:

* placement: instances go to the worker hosting the fewest (a policy may name
  one); a worker that dies is restarted under the same id, and its instances
  live on in the new process;
* transport: each worker connects back to a Unix socket in a private (0700)
  directory and proves it knows the run's secret before anything is
  unpickled (``nalarc.wire``); messages go out with one ``writev`` from the
  task that sends them, and replies come in through one read loop per worker.

State (:class:`ProcessPool`):
    ``workers``  worker id -> :class:`WorkerHandle` (process, connection)
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .._api import ComponentSpec, component_spec
from .._errors import NalarcError
from ..wire import ConnectionClosed, FramedStream, Init, Ready, Shutdown, accept_worker, dumps
from ._backend import ControlledBackend
from ._pool import Placement as Placement
from ._pool import PoolEvents, fewest_hosted
from ._statestore import StateStore


class WorkerHandle:
    """One worker process and its authenticated connection."""

    def __init__(self, worker_id: str, process: trio.Process) -> None:
        self.id, self.process = worker_id, process
        self.conn: FramedStream | None = None
        self.ready = trio.Event()
        self.alive = True
        #: ``time.monotonic()`` when it was started.
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class RestartBackoff:
    """How long to wait before restarting a worker that died (systemd's and Kubernetes' rule).

    The first restart is immediate: a worker killed once (the OOM killer, a chaos
    test) should be back at once.  A worker that dies again within ``stable``
    seconds of its start is restarted after ``first``, then twice as long each
    time, up to ``cap``; one that lived ``stable`` seconds starts the count afresh.
    """

    first: float = 0.25
    cap: float = 10.0
    stable: float = 10.0
    _quick_deaths: dict[str, int] = field(default_factory=dict)

    def delay(self, worker: WorkerHandle, now: float) -> float:
        """Seconds to wait before restarting ``worker``, which died at ``now``."""
        if now - worker.started >= self.stable:
            self._quick_deaths[worker.id] = 0
            return 0.0
        deaths = self._quick_deaths.get(worker.id, 0)
        self._quick_deaths[worker.id] = deaths + 1
        return 0.0 if deaths == 0 else min(self.cap, self.first * 2 ** (deaths - 1))


class ProcessPool:
    """Worker processes of this machine: start, supervise, place, talk (see the module docstring)."""

    def __init__(self, build_dir: Path, count: int) -> None:
        self.build_dir, self.count = Path(build_dir), count
        self.secret = secrets.token_bytes(32)
        self._workers: dict[str, WorkerHandle] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="nalarc-")
        self.socket_path = str(Path(self._tmp.name) / "driver.sock")
        self._nursery: trio.Nursery | None = None
        self._events: PoolEvents[WorkerHandle] | None = None
        self.closing = False
        self.backoff = RestartBackoff()
        #: Restarts so far, and how many of them waited (for the status page and tests).
        self.restarts = self.delayed_restarts = 0

    @property
    def workers(self) -> Mapping[str, WorkerHandle]:
        return self._workers

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the pool is not started"
        return self._nursery

    async def start(self, nursery: trio.Nursery, events: PoolEvents[WorkerHandle]) -> None:
        """Spawn the workers and wait until every one is connected, authenticated and ready."""
        self._nursery, self._events = nursery, events
        os.chmod(self._tmp.name, 0o700)
        listener_socket = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener_socket.bind(self.socket_path)
        listener_socket.listen(64)
        self._listener = trio.SocketListener(listener_socket)
        nursery.start_soon(self._accept_loop)
        for index in range(self.count):
            await self._spawn(f"w{index}")
        with trio.fail_after(60):
            for worker in self._workers.values():
                await worker.ready.wait()

    def place(self, spec: ComponentSpec, node: str | None, hosted: Mapping[str, int]) -> WorkerHandle:
        return fewest_hosted(self._workers, node, hosted)

    def send(self, worker: WorkerHandle, message: tuple[Any, ...], user: tuple[Any, ...] | None = None) -> None:
        if worker.alive and worker.conn is not None:
            worker.conn.send_soon(dumps(message, user))

    async def aclose(self) -> None:
        self.closing = True
        for worker in self._workers.values():
            if worker.conn is not None:
                try:
                    await worker.conn.send(Shutdown())
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        with trio.move_on_after(5):
            for worker in self._workers.values():
                await worker.process.wait()
        for worker in self._workers.values():
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        self._tmp.cleanup()

    # -- processes and connections ---------------------------------------------

    async def _spawn(self, worker_id: str) -> WorkerHandle:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "nalarc.worker", self.socket_path, worker_id],
            stdin=-1,  # subprocess.PIPE
        )
        assert process.stdin is not None
        await process.stdin.send_all(self.secret.hex().encode() + b"\n")
        await process.stdin.aclose()
        worker = WorkerHandle(worker_id, process)
        self._workers[worker_id] = worker
        self.nursery.start_soon(self._supervise, worker)
        return worker

    async def _accept_loop(self) -> None:
        while True:
            stream = await self._listener.accept()
            self.nursery.start_soon(self._handshake, stream)

    async def _handshake(self, stream: trio.SocketStream) -> None:
        try:
            conn, worker_id = await accept_worker(stream, self.secret, self.nursery)
        except (NalarcError, trio.TooSlowError, trio.BrokenResourceError):
            return
        worker = self._workers.get(worker_id)
        if worker is None or worker.conn is not None:
            await conn.aclose()
            return
        worker.conn = conn
        await conn.send(Init(str(self.build_dir.resolve())))
        self.nursery.start_soon(self._read_loop, worker)

    async def _read_loop(self, worker: WorkerHandle) -> None:
        """Every message from one worker, in order: to the backend (``Ready`` is the pool's own)."""
        assert worker.conn is not None and self._events is not None
        received = self._events.received
        try:
            while True:
                for message in await worker.conn.receive_batch():
                    if type(message) is Ready:
                        worker.ready.set()
                    else:
                        received(worker, message)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _supervise(self, worker: WorkerHandle) -> None:
        """Wait for the worker to die; report it; start a replacement under the same id (after its backoff)."""
        await worker.process.wait()
        worker.alive = False
        if self.closing:
            return
        assert self._events is not None
        code = worker.process.returncode
        self._events.lost(worker, -code if code is not None and code < 0 else None)
        delay = self.backoff.delay(worker, time.monotonic())
        self.restarts += 1
        if delay:
            self.delayed_restarts += 1
            await trio.sleep(delay)  # its instances' queued calls wait (or are moved by the policy)
        replacement = await self._spawn(worker.id)
        with trio.fail_after(60):
            await replacement.ready.wait()
        self._events.replaced(worker, replacement)


class ProcessBackend(ControlledBackend[WorkerHandle]):
    """Component calls on worker processes of this machine: the shared core over a :class:`ProcessPool`."""

    name = "process"

    def __init__(self, build_dir: Path, store: StateStore, placement: Placement) -> None:
        super().__init__(store, placement, ProcessPool(Path(build_dir), placement.workers))


def app_components(module_names: list[str]) -> dict[str, Any]:
    """Every tool and agent defined in the app's modules, by key."""
    found: dict[str, Any] = {}
    for name in module_names:
        module = sys.modules.get(name)
        if module is None:
            continue
        for value in vars(module).values():
            spec = component_spec(value)
            if spec is not None and spec.key.partition(":")[0] == name:
                found[spec.key] = value
    return found
