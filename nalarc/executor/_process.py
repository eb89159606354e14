"""The process backend: worker processes, their supervisor, and one controller per instance.

Topology: the driver (this process) runs compiled workflow code for many
requests under trio.  ``workers`` processes host component instances; each
instance has a *component-level controller* here in the driver: a priority
queue, a concurrency limit, and the metrics the global controller reads.
Placement and transport sit behind :class:`WorkerHandle`, so another backend
(Ray) can supply the same interface.

State:
    ``instances``   instance id -> :class:`~nalarc.executor._instance.InstanceController`
    ``by_component`` component key -> its live instance ids
    ``sticky``      (session, component key) -> instance id, for stateful and
                    managed-state agents (one session, one instance, in order)
    ``workers``     worker id -> :class:`WorkerHandle` (process, connection,
                    calls in flight)
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import trio

from .._api import ComponentSpec, component_spec
from .._errors import BrokenWorkerError, NalarcError, PolicyError
from ..policies import Policy
from . import _rt
from ._controller import GlobalController, NodeStore
from ._instance import InstanceController, QueuedCall
from ._local import InProcessBackend
from ._statestore import StateStore
from ._trace import Tracer
from ._transport import ConnectionClosed, FramedStream, accept_worker, dumps


@dataclass
class Placement:
    """How many instances of each component, and how many calls each runs at once."""

    workers: int = 2
    #: component name (``Planner``) or key -> instance count
    instances: dict[str, int] = field(default_factory=dict)
    #: instances of components not named in ``instances`` (None: ``min_instances``)
    default_instances: int | None = None
    #: calls one instance runs at the same time (agents, tools)
    agent_concurrency: int = 4
    tool_concurrency: int = 16
    #: the global controller's policy (None: no periodic loop) and its period
    policy: Policy | None = None
    interval: float = 0.1
    #: where every call is recorded, if anywhere (``--trace-out``)
    tracer: Tracer | None = None
    #: most calls merged into one batch for a ``batchable`` agent
    max_batch: int = 16
    #: merge queued calls of ``batchable`` agents (off: how frameworks without batching behave)
    batching: bool = True


class WorkerHandle:
    """One worker process and its authenticated connection."""

    def __init__(self, worker_id: str, process: trio.Process) -> None:
        self.id, self.process = worker_id, process
        self.conn: FramedStream | None = None
        self.ready = trio.Event()
        self.inflight: dict[int, tuple[QueuedCall, InstanceController[WorkerHandle]]] = {}
        self.alive = True

    @property
    def pid(self) -> int:
        return self.process.pid


class ProcessBackend:
    """Runs component calls on worker processes (see the module docstring)."""

    def __init__(self, build_dir: Path, store: StateStore, placement: Placement) -> None:
        self.build_dir, self.store, self.placement = Path(build_dir), store, placement
        self.secret = secrets.token_bytes(32)
        self.workers: dict[str, WorkerHandle] = {}
        self.instances: dict[str, InstanceController[WorkerHandle]] = {}
        self.by_component: dict[str, list[str]] = {}
        self.sticky: dict[tuple[str, str], str] = {}
        self._components: dict[str, tuple[ComponentSpec, int]] = {}
        self._instance_numbers: dict[str, Iterator[int]] = {}
        self._call_ids = itertools.count(1)
        self._inline = InProcessBackend(store)
        self._tmp = tempfile.TemporaryDirectory(prefix="nalarc-")
        self.socket_path = str(Path(self._tmp.name) / "driver.sock")
        self._nursery: trio.Nursery | None = None
        self.closing = False
        self.node_store = NodeStore()
        self.controller = GlobalController(self, placement.policy, placement.interval) if placement.policy else None
        self.tracer, self.max_batch = placement.tracer, placement.max_batch
        self.batching = placement.batching

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the backend is not started"
        return self._nursery

    def new_runtime(self) -> _rt.Runtime:
        return _rt.Runtime(self)

    # -- lifecycle ---------------------------------------------------------

    async def start(self, nursery: trio.Nursery, components: dict[str, Any]) -> None:
        """Spawn the workers, wait until they are ready, create the instances."""
        self._nursery = nursery
        os.chmod(self._tmp.name, 0o700)
        listener_socket = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener_socket.bind(self.socket_path)
        listener_socket.listen(64)
        self._listener = trio.SocketListener(listener_socket)
        nursery.start_soon(self._accept_loop)
        for index in range(self.placement.workers):
            await self._spawn(f"w{index}")
        with trio.fail_after(60):
            for worker in self.workers.values():
                await worker.ready.wait()
        self._place(components)
        if self.controller is not None:
            nursery.start_soon(self.controller.run)

    async def _spawn(self, worker_id: str) -> WorkerHandle:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "nalarc.executor._worker_main", self.socket_path, worker_id],
            stdin=-1,  # subprocess.PIPE
        )
        assert process.stdin is not None
        await process.stdin.send_all(self.secret.hex().encode() + b"\n")
        await process.stdin.aclose()
        worker = WorkerHandle(worker_id, process)
        self.workers[worker_id] = worker
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
        worker = self.workers.get(worker_id)
        if worker is None or worker.conn is not None:
            await conn.aclose()
            return
        worker.conn = conn
        await conn.send(("init", str(self.build_dir.resolve())))
        self.nursery.start_soon(self._read_loop, worker)

    def _place(self, components: dict[str, Any]) -> None:
        worker_ids = sorted(self.workers)
        slot = itertools.count()
        for key, obj in sorted(components.items()):
            spec = component_spec(obj)
            assert spec is not None
            wanted = self.placement.instances.get(spec.name, self.placement.instances.get(key))
            if wanted is None and spec.kind == "agent":
                wanted = self.placement.default_instances
            low, high = spec.directives.min_instances, spec.directives.max_instances
            count = max(1, low) if wanted is None else max(1, min(wanted, max(high, wanted)))
            limit = self.placement.agent_concurrency if spec.kind == "agent" else self.placement.tool_concurrency
            if spec.directives.stateful:
                limit = 1
            self._components[spec.name] = (spec, limit)
            for _ in range(count):
                self._add_instance(spec, limit, self.workers[worker_ids[next(slot) % len(worker_ids)]])

    def _add_instance(self, spec: ComponentSpec, limit: int, worker: WorkerHandle) -> str:
        index = next(self._instance_numbers.setdefault(spec.key, itertools.count()))
        instance_id = f"{spec.name}#{index}"
        self.instances[instance_id] = InstanceController(self, instance_id, spec, worker, limit)
        self.by_component.setdefault(spec.key, []).append(instance_id)
        return instance_id

    def provision(self, name: str, node: str | None = None) -> str | None:
        """Start one more instance of component ``name`` (None at ``max_instances``)."""
        if name not in self._components:
            raise PolicyError(f"provision: no component {name!r}")
        spec, limit = self._components[name]
        if len(self.by_component.get(spec.key, [])) >= spec.directives.max_instances:
            return None
        if node is not None and node not in self.workers:
            raise PolicyError(f"provision: no worker {node!r}")
        worker = self.workers[node] if node else min(
            self.workers.values(), key=lambda w: sum(1 for c in self.instances.values() if c.worker is w)
        )
        return self._add_instance(spec, limit, worker)

    def retire(self, controller: InstanceController[WorkerHandle]) -> None:
        """Stop routing to an instance; its queued calls go to its siblings."""
        controller.retired = True
        self.by_component[controller.spec.key].remove(controller.id)
        del self.instances[controller.id]
        for key, instance in list(self.sticky.items()):
            if instance == controller.id:
                del self.sticky[key]
        for key, instance in list(self.node_store.decisions.routes.items()):
            if instance == controller.id:
                del self.node_store.decisions.routes[key]
        for entry in controller.take_queued():
            self._route(entry.call).submit(entry)

    async def aclose(self) -> None:
        self.closing = True
        for worker in self.workers.values():
            if worker.conn is not None:
                try:
                    await worker.conn.send(("shutdown",))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        with trio.move_on_after(5):
            for worker in self.workers.values():
                await worker.process.wait()
        for worker in self.workers.values():
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        self._tmp.cleanup()

    # -- worker traffic ----------------------------------------------------

    async def _read_loop(self, worker: WorkerHandle) -> None:
        assert worker.conn is not None
        try:
            while True:
                for message in await worker.conn.receive_batch():
                    kind = message[0]
                    if kind == "done":
                        self._finish(worker, *message[1:])
                    elif kind == "call":
                        self.nursery.start_soon(self._nested_call, worker, *message[1:])
                    elif kind == "ready":
                        worker.ready.set()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    def _finish(self, worker: WorkerHandle, call_id: int, ok: bool, payload: Any, state: Any, text: str) -> None:
        found = worker.inflight.pop(call_id, None)
        if found is None:
            return
        entry, controller = found
        if entry.preempted and not ok:
            # Preempted: queue it again; it runs when a slot frees (maybe this one).
            entry.preempted = False
            controller.release(entry)
            controller.submit(entry)
            return
        if ok and state is not None:
            self.store.commit(entry.call.session, controller.spec.key, state)
        entry.ok, entry.payload, entry.text = ok, payload, text
        self._deliver(entry)
        controller.release(entry)

    def _deliver(self, entry: QueuedCall) -> None:
        """A call's outcome is known: settle a direct call's future, or wake :meth:`execute`."""
        call = entry.call
        if not call.direct:
            entry.done.set()
        elif entry.ok:
            _rt.complete_call(call, None, entry.payload)
        else:
            _rt.complete_call(call, _error_of(entry), None)

    async def _nested_call(self, worker: WorkerHandle, sub_id: int, target: Any, method: str | None,
                           flags: int, args: tuple[Any, ...], kwargs: dict[str, Any], session: str, request: str) -> None:
        spec = target.spec if isinstance(target, _rt.AgentHandle) else component_spec(target)
        assert spec is not None
        record = _rt.CallRecord(spec, target, method, args, kwargs, session, request, None)
        record.stage = flags >> _rt.STAGE_SHIFT
        try:
            value = await self.execute(record)
            reply: tuple[Any, ...] = ("result", sub_id, True, value)
        except Exception as error:  # noqa: BLE001 - sent back to the caller
            reply = ("result", sub_id, False, cloudpickle.dumps(error))
        if worker.conn is not None and worker.alive:
            try:
                await worker.conn.send(reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def send_preempt(self, controller: InstanceController[WorkerHandle], hook: str) -> None:
        if controller.worker.conn is not None:
            try:
                await controller.worker.conn.send(("preempt", controller.id, hook))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def send_batch(self, controller: InstanceController[WorkerHandle], batch: list[QueuedCall]) -> None:
        worker = controller.worker
        items = []
        for entry in batch:
            call_id = next(self._call_ids)
            worker.inflight[call_id] = (entry, controller)
            call = entry.call
            items.append((call_id, call.method, call.args, call.kwargs, call.session, call.request))
        assert worker.conn is not None
        try:
            await worker.conn.send(("run_batch", controller.id, controller.spec.key, items))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the supervisor fails or re-runs them

    def send_run(self, controller: InstanceController[WorkerHandle], entry: QueuedCall, state: Any) -> None:
        worker = controller.worker
        call = entry.call
        call_id = next(self._call_ids)
        worker.inflight[call_id] = (entry, controller)
        message = ("run", call_id, controller.id, controller.spec.key, call.method, call.args, call.kwargs,
                   call.session, call.request, state)
        assert worker.conn is not None
        worker.conn.send_soon(dumps(message, (call.args, call.kwargs, state)))

    # -- supervision -------------------------------------------------------

    async def _supervise(self, worker: WorkerHandle) -> None:
        await worker.process.wait()
        worker.alive = False
        if self.closing:
            return
        code = worker.process.returncode
        sig = -code if code is not None and code < 0 else None
        lost = list(worker.inflight.values())
        worker.inflight.clear()
        for entry, controller in lost:
            controller.release(entry)
            if _retry_safe(controller.spec) and entry.attempts < 3:
                entry.attempts += 1
                self._route(entry.call).submit(entry)  # runs where a live worker is first
            else:
                entry.ok = False
                entry.payload = BrokenWorkerError(entry.call.label, controller.id, worker.pid, sig)
                self._deliver(entry)
        replacement = await self._spawn(worker.id)
        with trio.fail_after(60):
            await replacement.ready.wait()
        for controller in self.instances.values():
            if controller.worker is worker:
                queued = controller.take_queued()
                controller.worker = replacement
                for entry in queued:
                    controller.submit(entry)

    # -- routing and execution ---------------------------------------------

    def _route(self, call: _rt.CallRecord) -> InstanceController[WorkerHandle]:
        """Where a new call goes, event by event, under the installed decisions.

        An installed session route wins; then a stateful or managed-state
        agent's session stays where it is; then the installed weights; then
        the least loaded instance.
        """
        key, name = call.spec.key, call.spec.name
        candidates = self.by_component.get(key)
        if not candidates:
            raise NalarcError(f"no instance of {name!r} is running")
        decisions = self.node_store.decisions
        routed = decisions.routes.get((call.session, name))
        if routed is not None and routed in self.instances:
            return self.instances[routed]
        sticky = call.spec.kind == "agent" and (call.spec.directives.stateful or bool(call.spec.managed))
        if sticky:
            chosen = self.sticky.get((call.session, key))
            if chosen is not None and chosen in self.instances:
                return self.instances[chosen]
        best = self.node_store.pick_weighted(candidates, name)
        if best is None:
            best = candidates[0] if len(candidates) == 1 else min(candidates, key=self._least_loaded)
        if sticky:
            self.sticky[(call.session, key)] = best
        return self.instances[best]

    def _least_loaded(self, instance: str) -> tuple[bool, int, str]:
        controller = self.instances[instance]
        return not controller.worker.alive, controller.load, instance

    async def execute(self, call: _rt.CallRecord) -> Any:
        directives = call.spec.directives
        priority = self.node_store.decisions.priority(call.session, call.spec.name)
        for attempt in range(1 + directives.retries):
            entry = QueuedCall(call, priority=priority)
            self._route(call).submit(entry)
            if directives.timeout is None:
                await entry.done.wait()
            else:
                with trio.move_on_after(directives.timeout) as scope:
                    await entry.done.wait()
                if scope.cancelled_caught:
                    entry.ok, entry.payload = False, cloudpickle.dumps(TimeoutError(f"{call.label} timed out after {directives.timeout} s"))
            if entry.ok:
                return entry.payload
            if attempt == directives.retries:
                raise _error_of(entry)
        raise AssertionError("unreachable")

    def start_call(self, call: _rt.CallRecord) -> bool:
        """Queue a ready call now; :meth:`_deliver` settles its future (``_rt._start_now``).

        Calls with retries or a timeout need a task to wait in: :meth:`execute`.
        """
        directives = call.spec.directives
        if directives.retries or directives.timeout is not None:
            return False
        priority = self.node_store.decisions.priority(call.session, call.spec.name)
        self._route(call).submit(QueuedCall(call, priority=priority))
        return True

    def run_inline(self, spec: ComponentSpec, target: Any, method: str | None,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session: str) -> Any:
        return self._inline.run_inline(spec, target, method, args, kwargs, session)


def _error_of(entry: QueuedCall) -> BaseException:
    """The exception a failed call raises in the workflow, with the worker's traceback as a note."""
    error = entry.payload if isinstance(entry.payload, BaseException) else cloudpickle.loads(entry.payload)
    assert isinstance(error, BaseException)
    if entry.text:
        error.add_note(f"--- remote traceback (worker) ---\n{entry.text.rstrip()}")
    return error


def _retry_safe(spec: ComponentSpec) -> bool:
    """Re-running after a crash is safe: idempotent tools, agents whose only state is managed."""
    if spec.kind == "tool":
        return spec.directives.idempotent
    return not spec.directives.stateful


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
