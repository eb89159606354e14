"""The process backend: worker processes, their supervisor, and one controller per instance.

Topology: the driver (this process) runs compiled workflow code for many
requests under trio.  ``workers`` processes host component instances; each
instance has a *component-level controller* here in the driver: a priority
queue, a concurrency limit, and the metrics the global controller reads.
Placement and transport sit behind :class:`WorkerHandle`, so another backend
(Ray) can supply the same interface.

State:
    ``instances``   instance id -> :class:`InstanceController`
    ``by_component`` component key -> its live instance ids
    ``sticky``      (session, component key) -> instance id, for stateful and
                    managed-state agents (one session, one instance, in order)
    ``workers``     worker id -> :class:`WorkerHandle` (process, connection,
                    calls in flight)
"""

from __future__ import annotations

import heapq
import itertools
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import trio

from .._api import ComponentSpec, component_spec
from .._errors import BrokenWorkerError, NalarcError, PolicyError
from ..policies import FutureMetrics, InstanceMetrics, Policy
from . import _rt
from ._controller import GlobalController, NodeStore
from ._trace import Tracer
from ._local import InProcessBackend
from ._statestore import StateStore
from ._transport import ConnectionClosed, FramedStream, accept_worker


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


_future_ids = itertools.count(1)


@dataclass
class _Queued:
    """A call at an instance: its metadata moves with it when it migrates."""

    call: _rt.CallRecord
    priority: int
    done: trio.Event = field(default_factory=trio.Event)
    ok: bool = False
    payload: Any = None
    text: str = ""
    attempts: int = 0
    future_id: str = field(default_factory=lambda: f"F{next(_future_ids)}")
    created: float = field(default_factory=trio.current_time)
    #: The instance was asked to preempt this call: a failure re-queues it.
    preempted: bool = False
    #: Set when the instance gives the call back (batched calls only).
    returned: trio.Event = field(default_factory=trio.Event)
    in_batch: bool = False
    started: float = 0.0


class WorkerHandle:
    """One worker process and its authenticated connection."""

    def __init__(self, worker_id: str, process: trio.Process) -> None:
        self.id, self.process = worker_id, process
        self.conn: FramedStream | None = None
        self.ready = trio.Event()
        self.inflight: dict[int, tuple[_Queued, InstanceController]] = {}
        self.alive = True

    @property
    def pid(self) -> int:
        return self.process.pid


class InstanceController:
    """The component-level controller of one instance: queue, limit, metrics."""

    def __init__(self, backend: ProcessBackend, instance_id: str, spec: ComponentSpec, worker: WorkerHandle, limit: int) -> None:
        self.backend, self.id, self.spec, self.worker, self.limit = backend, instance_id, spec, worker, limit
        self._queue: list[tuple[int, int, _Queued]] = []
        self._order = itertools.count()
        self.running = 0
        self.running_entries: dict[str, _Queued] = {}
        self.completed = 0
        self.busy_seconds = 0.0
        self.latency_ms = 0.0
        self.batches = 0
        self.retired = False
        self._busy_mark = (trio.current_time(), 0.0)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def load(self) -> int:
        return len(self._queue) + self.running

    def waiting_sessions(self) -> set[str]:
        return {entry.call.session for _, _, entry in self._queue}

    def submit(self, entry: _Queued) -> None:
        heapq.heappush(self._queue, (-entry.priority, next(self._order), entry))
        self._maybe_preempt(entry)
        self._pump()

    def _maybe_preempt(self, arriving: _Queued) -> None:
        """A ``preemptable`` instance that is full makes room for a more urgent call."""
        hook = self.spec.directives.preemptable
        if hook is None or self.running < self.limit or not self.running_entries:
            return
        victim = min(self.running_entries.values(), key=lambda e: (e.priority, -e.created))
        if victim.priority >= arriving.priority or victim.preempted:
            return
        victim.preempted = True
        self.backend.nursery.start_soon(self.backend.send_preempt, self, hook)

    def take_queued(self) -> list[_Queued]:
        """Remove and return every queued (not running) call, for migration."""
        return self.take(lambda entry: True)

    def take(self, wanted: Callable[[_Queued], bool]) -> list[_Queued]:
        """Remove and return the queued calls ``wanted`` selects (in queue order)."""
        taken: list[tuple[int, int, _Queued]] = []
        kept: list[tuple[int, int, _Queued]] = []
        for item in sorted(self._queue):  # queue order, each call asked once
            (taken if wanted(item[2]) else kept).append(item)
        if taken:
            self._queue = kept
            heapq.heapify(self._queue)
        return [entry for _, _, entry in taken]

    def reprioritize(self, session: str, priority: int) -> None:
        changed = False
        for index, (_, order, entry) in enumerate(self._queue):
            if entry.call.session == session and entry.priority != priority:
                entry.priority = priority
                self._queue[index] = (-priority, order, entry)
                changed = True
        if changed:
            heapq.heapify(self._queue)

    def metrics(self) -> InstanceMetrics:
        """What this controller publishes to the node store."""
        now = trio.current_time()
        since, busy_before = self._busy_mark
        utilization = (self.busy_seconds - busy_before) / max(now - since, 1e-9)
        self._busy_mark = (now, self.busy_seconds)
        return InstanceMetrics(
            id=self.id, component=self.spec.name, kind=self.spec.kind, worker=self.worker.id,
            alive=self.worker.alive and not self.retired, stateful=self.spec.directives.stateful,
            queue_length=len(self._queue), running=self.running, capacity=self.limit,
            completed=self.completed, waiting_sessions=frozenset(self.waiting_sessions()),
            latency_ms=self.latency_ms, utilization=utilization,
        )

    def future_metrics(self, now: float) -> list[FutureMetrics]:
        out = [self._future(entry, now, "queued") for _, _, entry in self._queue]
        out += [self._future(entry, now, "running") for entry in self.running_entries.values()]
        return out

    def _future(self, entry: _Queued, now: float, status: str) -> FutureMetrics:
        call = entry.call
        return FutureMetrics(entry.future_id, call.session, call.request, self.spec.name, self.id,
                             call.stage, entry.priority, now - entry.created, status)

    def _pump(self) -> None:
        while self.running < self.limit and self._queue and self.worker.alive:
            _, _, entry = heapq.heappop(self._queue)
            self.running += 1
            if self.spec.directives.batchable:
                batch = [entry, *self.take(_same_method(entry, self.backend.placement.max_batch - 1))]
                self.backend.nursery.start_soon(self._dispatch_batch, batch)
            else:
                self._start(entry)

    async def _dispatch_batch(self, batch: list[_Queued]) -> None:
        """Queued calls of one method, merged into one batched call (one slot)."""
        started = trio.current_time()
        for entry in batch:
            entry.in_batch, entry.started = True, started
            self.running_entries[entry.future_id] = entry
        try:
            await self.backend.send_batch(self, batch)
            for entry in batch:
                await entry.returned.wait()
        finally:
            finished = trio.current_time()
            for entry in batch:
                del self.running_entries[entry.future_id]
            self.running -= 1
            self.completed += len(batch)
            self.batches += 1
            self.busy_seconds += finished - started
            self._pump()

    def _start(self, entry: _Queued) -> None:
        """Send a call to the worker now (no task: this is every call's hot path)."""
        call = entry.call
        entry.started = trio.current_time()
        self.running_entries[entry.future_id] = entry
        state = self.backend.store.load(call.session, self.spec.key) if self.spec.managed else None
        self.backend.send_run(self, entry, state)

    def release(self, entry: _Queued) -> None:
        """The worker gave the call back (done, preempted or lost): free its slot."""
        if entry.in_batch:
            entry.in_batch = False
            entry.returned.set()
            return
        finished = trio.current_time()
        tracer = self.backend.placement.tracer
        call = entry.call
        if tracer is not None:
            tracer.call(
                future=call.future_id or entry.future_id, label=call.label, instance=self.id,
                process=self.worker.pid, process_name=f"worker {self.worker.id}",
                created=entry.created, started=entry.started, finished=finished, session=call.session,
                request=call.request, stage=call.stage, depends_on=call.depends_on, ok=entry.ok,
            )
        self.running_entries.pop(entry.future_id, None)
        self.running -= 1
        self.completed += 1
        self.busy_seconds += finished - entry.started
        self.latency_ms = 0.8 * self.latency_ms + 0.2 * (finished - entry.created) * 1000
        self._pump()


class ProcessBackend:
    """Runs component calls on worker processes (see the module docstring)."""

    def __init__(self, build_dir: Path, store: StateStore, placement: Placement) -> None:
        self.build_dir, self.store, self.placement = Path(build_dir), store, placement
        self.secret = secrets.token_bytes(32)
        self.workers: dict[str, WorkerHandle] = {}
        self.instances: dict[str, InstanceController] = {}
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

    async def _handshake(self, stream: trio.abc.Stream) -> None:
        try:
            conn, worker_id = await accept_worker(stream, self.secret)
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

    def retire(self, controller: InstanceController) -> None:
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
                message = await worker.conn.receive()
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
        entry.done.set()
        controller.release(entry)

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

    async def send_preempt(self, controller: InstanceController, hook: str) -> None:
        if controller.worker.conn is not None:
            try:
                await controller.worker.conn.send(("preempt", controller.id, hook))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def send_batch(self, controller: InstanceController, batch: list[_Queued]) -> None:
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

    def send_run(self, controller: InstanceController, entry: _Queued, state: Any) -> None:
        worker = controller.worker
        call = entry.call
        call_id = next(self._call_ids)
        worker.inflight[call_id] = (entry, controller)
        message = ("run", call_id, controller.id, controller.spec.key, call.method, call.args, call.kwargs,
                   call.session, call.request, state)
        assert worker.conn is not None
        worker.conn.send_soon(cloudpickle.dumps(message, protocol=5), self.nursery)

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
                entry.done.set()
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

    def _route(self, call: _rt.CallRecord) -> InstanceController:
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
        best = self.node_store.pick_weighted(candidates, name) or min(
            candidates, key=lambda i: (not self.instances[i].worker.alive, self.instances[i].load, i)
        )
        if sticky:
            self.sticky[(call.session, key)] = best
        return self.instances[best]

    async def execute(self, call: _rt.CallRecord) -> Any:
        directives = call.spec.directives
        priority = self.node_store.decisions.priority(call.session, call.spec.name)
        for attempt in range(1 + directives.retries):
            entry = _Queued(call, priority=priority)
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
            error = entry.payload if isinstance(entry.payload, BaseException) else cloudpickle.loads(entry.payload)
            if entry.text:
                error.add_note(f"--- remote traceback (worker) ---\n{entry.text.rstrip()}")
            if attempt == directives.retries:
                raise error
        raise AssertionError("unreachable")

    def run_inline(self, spec: ComponentSpec, target: Any, method: str | None,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session: str) -> Any:
        return self._inline.run_inline(spec, target, method, args, kwargs, session)


def _same_method(first: _Queued, room: int) -> Callable[[_Queued], bool]:
    """Selects up to ``room`` queued calls of ``first``'s method (for one batch)."""
    left = [room]

    def wanted(entry: _Queued) -> bool:
        if left[0] > 0 and entry.call.method == first.call.method:
            left[0] -= 1
            return True
        return False

    return wanted


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
