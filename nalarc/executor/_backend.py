"""Backends with controllers: the core they share, and the pool interface they differ by.

A *backend* runs component calls for the runtime (:class:`~nalarc.executor._rt.Backend`).
Every backend that spreads calls over workers shares one core,
:class:`ControlledBackend`: one component-level controller per instance,
routing under the node store's decisions, the global controller, the calls in
flight, and what happens to them when a worker dies.  What differs between
such backends is *placement* (which workers exist, which one hosts a new
instance) and *transport* (how a message reaches a worker, how its replies
come back).  Those two sit behind :class:`WorkerPool`, with
:class:`PoolEvents` for the way back, so a backend is a pool plus this core:

* ``_process.ProcessPool``: worker processes on this machine, Unix sockets,
  HMAC-authenticated (nalarc's own);
* a Ray pool would host the same worker code (``_worker_main.Worker``) in Ray
  actors, send each message as an actor call and report replies as they
  resolve; no controller changes (see docs/executor.md).

The pool moves message tuples; what they mean is fixed by the worker
(``_worker_main``'s docstring lists them).  The core sends ``run``,
``run_batch``, ``preempt``, ``result``; it receives ``done`` and ``call``.

State (:class:`ControlledBackend`):
    ``instances``    instance id -> its :class:`~nalarc.executor._instance.InstanceController`
    ``by_component`` component key -> its live instance ids
    ``sticky``       (session, component key) -> instance id, for stateful and
                     managed-state agents (one session, one instance, in order)
    ``_inflight``    worker id -> {call id: (queued call, its controller)}: sent, not yet done
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import cloudpickle
import trio

from .._api import ComponentSpec, component_spec
from .._errors import BrokenWorkerError, NalarcError, PolicyError
from ..policies import Policy
from . import _rt
from ._controller import GlobalController, NodeStore
from ._instance import InstanceController, QueuedCall, WorkerLike
from ._local import InProcessBackend
from ._statestore import StateStore
from ._trace import Tracer


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


W = TypeVar("W", bound=WorkerLike)
W_contra = TypeVar("W_contra", bound=WorkerLike, contravariant=True)


class PoolEvents(Protocol[W_contra]):
    """What a pool reports to its backend.  Called in the backend's trio thread."""

    def received(self, worker: W_contra, message: tuple[Any, ...]) -> None:
        """A message from ``worker`` (``done``, ``call``), in the order it sent them."""

    def lost(self, worker: W_contra, signal: int | None) -> None:
        """``worker`` died (``signal``: what killed it, if a signal did); what it was running is lost."""

    def replaced(self, old: W_contra, new: W_contra) -> None:
        """``new`` took the place of the dead ``old`` (same id) and is ready for calls."""


class WorkerPool(Protocol[W]):
    """Placement and transport for a :class:`ControlledBackend`.

    Everything is called in the backend's trio thread; nothing here blocks
    (``send`` queues what the transport cannot take at once).
    """

    @property
    def workers(self) -> Mapping[str, W]:
        """The workers by id, alive or being replaced."""

    async def start(self, nursery: trio.Nursery, events: PoolEvents[W]) -> None:
        """Start the workers; return once every one is ready.  Background tasks go in ``nursery``."""

    def place(self, spec: ComponentSpec, node: str | None, hosted: Mapping[str, int]) -> W:
        """The worker a new instance of ``spec`` lives on.

        Args:
            spec: the component.
            node: the worker a policy asked for (``provision(agent, node)``), if any.
            hosted: how many instances each worker (by id) hosts now.

        Raises:
            PolicyError: ``node`` names no worker.
        """

    def send(self, worker: W, message: tuple[Any, ...], user: tuple[Any, ...] | None = None) -> None:
        """Send ``message`` to ``worker``, after everything sent to it before.

        Dropped if ``worker`` is dead (:meth:`PoolEvents.lost` accounts for
        its calls).  ``user``: the parts of the message that came from user
        code, when the rest is known to be plain data (an encoding hint).
        """

    async def aclose(self) -> None:
        """Stop every worker (they finish nothing more)."""


class ControlledBackend(Generic[W]):
    """Runs component calls on a pool's workers, one controller per instance (see the module docstring)."""

    def __init__(self, store: StateStore, placement: Placement, pool: WorkerPool[W]) -> None:
        self.store, self.placement, self.pool = store, placement, pool
        self.instances: dict[str, InstanceController[W]] = {}
        self.by_component: dict[str, list[str]] = {}
        self.sticky: dict[tuple[str, str], str] = {}
        self._components: dict[str, tuple[ComponentSpec, int]] = {}
        self._instance_numbers: dict[str, Iterator[int]] = {}
        self._call_ids = itertools.count(1)
        self._inflight: dict[str, dict[int, tuple[QueuedCall, InstanceController[W]]]] = {}
        self._inline = InProcessBackend(store)
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

    @property
    def workers(self) -> Mapping[str, W]:
        return self.pool.workers

    def new_runtime(self) -> _rt.Runtime:
        return _rt.Runtime(self)

    # -- lifecycle ---------------------------------------------------------

    async def start(self, nursery: trio.Nursery, components: dict[str, Any]) -> None:
        """Start the pool's workers, create the instances, start the global controller."""
        self._nursery = nursery
        await self.pool.start(nursery, self)
        for key, obj in sorted(components.items()):
            spec = component_spec(obj)
            assert spec is not None
            self._place(spec, key)
        if self.controller is not None:
            nursery.start_soon(self.controller.run)

    def _place(self, spec: ComponentSpec, key: str) -> None:
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
            self._add_instance(spec, limit, None)

    def _add_instance(self, spec: ComponentSpec, limit: int, node: str | None) -> str:
        hosted = {worker_id: 0 for worker_id in self.pool.workers}
        for controller in self.instances.values():
            hosted[controller.worker.id] = hosted.get(controller.worker.id, 0) + 1
        worker = self.pool.place(spec, node, hosted)
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
        return self._add_instance(spec, limit, node)

    def retire(self, controller: InstanceController[W]) -> None:
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
        await self.pool.aclose()

    # -- what workers send (PoolEvents) -----------------------------------

    def received(self, worker: W, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "done":
            self._finish(worker, *message[1:])
        elif kind == "call":
            self.nursery.start_soon(self._nested_call, worker, *message[1:])

    def _finish(self, worker: W, call_id: int, ok: bool, payload: Any, state: Any, text: str) -> None:
        found = self._inflight.get(worker.id, {}).pop(call_id, None)
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

    async def _nested_call(self, worker: W, sub_id: int, target: Any, method: str | None,
                           flags: int, args: tuple[Any, ...], kwargs: dict[str, Any], session: str, request: str) -> None:
        """A component call made by component code running on ``worker``: scheduled like any other."""
        spec = target.spec if isinstance(target, _rt.AgentHandle) else component_spec(target)
        assert spec is not None
        record = _rt.CallRecord(spec, target, method, args, kwargs, session, request, None)
        record.stage = flags >> _rt.STAGE_SHIFT
        try:
            value = await self.execute(record)
            self.pool.send(worker, ("result", sub_id, True, value), (value,))
        except Exception as error:  # noqa: BLE001 - sent back to the caller
            self.pool.send(worker, ("result", sub_id, False, cloudpickle.dumps(error)))

    def lost(self, worker: W, signal: int | None) -> None:
        """Calls in flight on a dead worker: re-run if retry-safe, else fail with :class:`BrokenWorkerError`."""
        lost = list(self._inflight.pop(worker.id, {}).values())
        for entry, controller in lost:
            controller.release(entry)
            if _retry_safe(controller.spec) and entry.attempts < 3:
                entry.attempts += 1
                self._route(entry.call).submit(entry)  # runs where a live worker is first
            else:
                entry.ok = False
                entry.payload = BrokenWorkerError(entry.call.label, controller.id, worker.pid, signal)
                self._deliver(entry)

    def replaced(self, old: W, new: W) -> None:
        """The instances of a dead worker live on its replacement; their queued calls run there."""
        for controller in self.instances.values():
            if controller.worker is old:
                queued = controller.take_queued()
                controller.worker = new
                for entry in queued:
                    controller.submit(entry)

    # -- what controllers send (InstanceHost) -----------------------------

    def calls_in_flight(self, worker_id: str) -> int:
        """Calls sent to ``worker_id`` and not yet done."""
        return len(self._inflight.get(worker_id, ()))

    def _track(self, controller: InstanceController[W], entry: QueuedCall) -> int:
        call_id = next(self._call_ids)
        self._inflight.setdefault(controller.worker.id, {})[call_id] = (entry, controller)
        return call_id

    def send_run(self, controller: InstanceController[W], entry: QueuedCall, state: Any) -> None:
        call = entry.call
        call_id = self._track(controller, entry)
        message = ("run", call_id, controller.id, controller.spec.key, call.method, call.args, call.kwargs,
                   call.session, call.request, state)
        self.pool.send(controller.worker, message, (call.args, call.kwargs, state))

    async def send_batch(self, controller: InstanceController[W], batch: list[QueuedCall]) -> None:
        items = []
        for entry in batch:
            call = entry.call
            items.append((self._track(controller, entry), call.method, call.args, call.kwargs, call.session,
                          call.request))
        self.pool.send(controller.worker, ("run_batch", controller.id, controller.spec.key, items))

    async def send_preempt(self, controller: InstanceController[W], hook: str) -> None:
        self.pool.send(controller.worker, ("preempt", controller.id, hook))

    # -- routing and execution ---------------------------------------------

    def _route(self, call: _rt.CallRecord) -> InstanceController[W]:
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
