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
* ``_ray.RayPool``: the same worker code (``_worker_main.Worker``) in Ray
  actors; messages go as actor calls, replies come back as they resolve.

The pool moves message tuples; what they mean is fixed by the worker
(``_worker_main``'s docstring lists them).  The core sends ``run``,
``run_batch``, ``preempt``, ``result`` and, for push readiness, ``consume``,
``release``, ``value`` (and ``probe``); it receives ``done``, ``call``,
``need`` (and ``probe``).  ``tests/executor/test_transport_pool.py`` runs the
core over a pool of threads.

State (:class:`ControlledBackend`):
    ``instances``    instance id -> its :class:`~nalarc.executor._instance.InstanceController`
    ``by_component`` component key -> its live instance ids
    ``sticky``       (session, component key) -> instance id, for stateful and
                     managed-state agents (one session, one instance, in order)
    ``_inflight``    worker id -> {call id: (queued call, its controller)}: sent, not yet done
    push readiness (see the comment above :meth:`ControlledBackend.place_call`):
    ``_placed_at``   instance id -> calls placed there, waiting for their inputs
    ``_placed_by_session`` (session, component key) -> those calls (a session migration moves them)
    ``_refs``        producer call id -> [its future, runs that took it by reference and are not done]
    ``_run_refs``    consumer call id -> the producer call ids it took by reference
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import cloudpickle
import trio

from .._api import ATTRIBUTE_WRITE, ComponentSpec, component_spec
from .._errors import BrokenWorkerError, NalarcError, PolicyError
from ..policies import Policy
from ..runtime import lowlevel as _rt
from ._controller import GlobalController, NodeStore
from ..runtime.lowlevel import dump_exception
from ._instance import InstanceController, QueuedCall, WorkerLike
from ._local import InProcessBackend
from ._statestore import StateStore
from ._trace import Tracer
from ._transport import DepRef


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
    #: push readiness: a call whose inputs are pending is placed at once, and each input's
    #: value goes from the worker that produced it straight to the worker that needs it
    #: (off: such a call waits in the driver and gets its inputs from the driver)
    push: bool = True
    #: where the workers run: ``process`` (this machine) or ``ray`` (actors of a Ray cluster)
    backend: str = "process"
    #: the Ray cluster to join (None: ``RAY_ADDRESS``, else a local cluster started for the run)
    ray_address: str | None = None


@dataclass(eq=False, slots=True)
class _Placed:
    """A call placed before its inputs were ready (``CallRecord.placed``)."""

    #: Where it will run (its executor; a session migration moves it).
    target: InstanceController[Any]
    #: Its name in the producers' push lists.
    key: int
    #: input future -> (producer call id, the worker holding a copy for this call, the producer's worker id)
    copies: dict[_rt.Pending, tuple[int, WorkerLike, str]] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Pushes:
    """Where a producer's value goes when it is done (``CallRecord.pushes``)."""

    #: consumer key -> (the worker it will run on, the consumer)
    to: dict[int, tuple[WorkerLike, _rt.CallRecord]] = field(default_factory=dict)


class _Sticky(dict[tuple[str, str], str]):
    """``sticky``, telling the backend when a session's calls of a component move (placed calls follow)."""

    def __init__(self, moved: Callable[[tuple[str, str], str], None]) -> None:
        super().__init__()
        self._moved = moved

    def __setitem__(self, key: tuple[str, str], instance: str) -> None:
        super().__setitem__(key, instance)
        self._moved(key, instance)


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


def fewest_hosted(workers: Mapping[str, W], node: str | None, hosted: Mapping[str, int]) -> W:
    """``WorkerPool.place`` for pools of equal workers: the named one, else the one hosting the fewest instances."""
    if node is not None:
        if node not in workers:
            raise PolicyError(f"provision: no worker {node!r}")
        return workers[node]
    return workers[min(workers, key=lambda worker_id: hosted.get(worker_id, 0))]


class ControlledBackend(Generic[W]):
    """Runs component calls on a pool's workers, one controller per instance (see the module docstring)."""

    #: what ``/v1/status`` calls it
    name = "controlled"

    def __init__(self, store: StateStore, placement: Placement, pool: WorkerPool[W]) -> None:
        self.store, self.placement, self.pool = store, placement, pool
        self.instances: dict[str, InstanceController[W]] = {}
        self.by_component: dict[str, list[str]] = {}
        self.sticky: dict[tuple[str, str], str] = _Sticky(self._session_moved)
        self._components: dict[str, tuple[ComponentSpec, int]] = {}
        self._instance_numbers: dict[str, Iterator[int]] = {}
        self._call_ids = itertools.count(1)
        self._inflight: dict[str, dict[int, tuple[QueuedCall, InstanceController[W]]]] = {}
        # push readiness (see :meth:`place_call`)
        self._keys = itertools.count(1)
        self._placed_at: dict[str, int] = {}
        self._placed_by_session: dict[tuple[str, str], set[_rt.CallRecord]] = {}
        #: producer call id -> [its future, runs sent a DepRef to it and not done]: for ``need``
        self._refs: dict[int, list[Any]] = {}
        #: consumer call id -> the producer call ids it took by reference
        self._run_refs: dict[int, tuple[int, ...]] = {}
        self._probes: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        #: Inputs of placed calls: passed by reference (pushed), or sent by the driver.
        self.push_stats = {"by_reference": 0, "from_driver": 0}
        self._probe_ids = itertools.count(1)
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
        elif kind == "need":
            self._send_value(worker, message[1])
        elif kind == "probe":
            waiting = self._probes.pop(message[1], None)
            if waiting is not None:
                waiting[1].append(message[2])
                waiting[0].set()

    def _finish(self, worker: W, call_id: int, ok: bool, payload: Any, state: Any, text: str,
                pushed: tuple[tuple[str, tuple[int, ...]], ...] = ()) -> None:
        found = self._inflight.get(worker.id, {}).pop(call_id, None)
        if found is None:
            return
        if self._run_refs:
            self._unref(call_id)
        entry, controller = found
        if ok and entry.call.pushes is not None:
            self._pushed(entry.call, call_id, worker, pushed)
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
            text = "".join(traceback.format_exception(error))
            self.pool.send(worker, ("result", sub_id, False, dump_exception(error, text)))

    def lost(self, worker: W, signal: int | None) -> None:
        """Calls in flight on a dead worker: re-run if retry-safe, else fail with :class:`BrokenWorkerError`."""
        lost = self._inflight.pop(worker.id, {})
        for call_id in lost:
            self._unref(call_id)
        for entry, controller in lost.values():
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
        args, kwargs = call.args, call.kwargs
        deps: tuple[tuple[int, str], ...] = ()
        push: tuple[tuple[str, int], ...] = ()
        if call.placed is not None:
            args, kwargs, deps = self._inputs_for(call, controller.worker, call_id)
        call.attempt = (controller.worker, call_id)  # consumers placed later are sent there
        if call.pushes is not None:
            push = tuple((worker.id, key) for key, (worker, _) in call.pushes.to.items())
        message = ("run", call_id, controller.id, controller.spec.key, call.method, args, kwargs,
                   call.session, call.request, state, deps, push)
        self.pool.send(controller.worker, message, (args, kwargs, state))

    async def send_batch(self, controller: InstanceController[W], batch: list[QueuedCall]) -> None:
        items = []
        for entry in batch:
            call = entry.call
            call_id = self._track(controller, entry)
            args, kwargs = call.args, call.kwargs
            if call.placed is not None:  # a batch takes its inputs from the driver
                args, kwargs, _ = self._inputs_for(call, None, call_id)
            items.append((call_id, call.method, args, kwargs, call.session, call.request))
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
        # Stateful and managed-state agents keep a session on one instance; so does an agent
        # whose attributes a session assigned through a handle (later reads must see them).
        sticky = call.spec.kind == "agent" and (
            call.spec.directives.stateful or bool(call.spec.managed) or call.method == ATTRIBUTE_WRITE
            or (call.session, key) in self.sticky
        )
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
        """Calls placed there and still waiting for their inputs count as load too.

        (``getattr``: benchmarks/controlplane.py runs this method on an emulated
        cluster, which places nothing.)
        """
        controller = self.instances[instance]
        placed: dict[str, int] | None = getattr(self, "_placed_at", None)
        return not controller.worker.alive, controller.load + (placed.get(instance, 0) if placed else 0), instance

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
        if call.placed is None:
            controller = self._route(call)
        else:
            self._unplace(call)
            target: InstanceController[W] = call.placed.target
            controller = target if self.instances.get(target.id) is target else self._route(call)
        controller.submit(QueuedCall(call, priority=0))  # submit applies the session's installed priority
        return True

    # -- push readiness ----------------------------------------------------
    #
    # A call whose inputs are pending is *placed* when it is made: routed to
    # its instance (its executor), and registered with each producer as a
    # consumer on that instance's worker.  When a producer succeeds, its
    # worker pushes the value to those workers and says so in ``done``
    # (``pushed``).  The call enters its instance's queue when its last input
    # settles here (so the controller's limit and priorities apply as to any
    # call, and a failed input fails it exactly as before); ``send_run`` then
    # passes each input by reference if a copy went to the worker it runs on,
    # and the value itself otherwise (the call moved, or registered too late),
    # releasing copies that will not be used.  The driver still receives
    # every value, and serves ``need`` when a push cannot arrive.

    def place_call(self, call: _rt.CallRecord) -> bool:
        """Place a call whose inputs are pending (see above); False: it waits in the driver."""
        directives = call.spec.directives
        if not self.placement.push or directives.retries or directives.timeout is not None:
            return False
        try:
            controller = self._route(call)
        except NalarcError:
            return False  # no instance: raised when it is made the ordinary way
        placed = call.placed = _Placed(controller, next(self._keys))
        self._placed_at[controller.id] = self._placed_at.get(controller.id, 0) + 1
        self._placed_by_session.setdefault((call.session, call.spec.key), set()).add(call)
        for p in call.inputs:
            if not p.done() and p.call is not None:
                self._consume(p.call, placed.key, controller.worker, call)
        return True

    def forget_call(self, call: _rt.CallRecord) -> None:
        """A placed call that will never run: its copies are released (once)."""
        placed = call.placed
        if placed is None:
            return
        self._unplace(call)
        call.placed = None
        for call_id, holder, _ in placed.copies.values():
            self.pool.send(holder, ("release", call_id, 1))

    def _consume(self, producer: _rt.CallRecord, key: int, worker: WorkerLike, consumer: _rt.CallRecord) -> None:
        """Register ``consumer`` (on ``worker``) with ``producer``; tell its worker if it is running."""
        pushes = producer.pushes
        if pushes is None:
            pushes = producer.pushes = _Pushes()
        pushes.to[key] = (worker, consumer)
        if producer.attempt is not None:  # it is running (or done there, and the worker ignores this)
            running_on, call_id = producer.attempt
            self.pool.send(running_on, ("consume", call_id, worker.id, key))

    def _unplace(self, call: _rt.CallRecord) -> None:
        """A placed call stops waiting (it starts, or never will)."""
        placed = call.placed
        assert placed is not None
        left = self._placed_at[placed.target.id] - 1
        if left:
            self._placed_at[placed.target.id] = left
        else:
            del self._placed_at[placed.target.id]
        waiting = self._placed_by_session[(call.session, call.spec.key)]
        waiting.discard(call)
        if not waiting:
            del self._placed_by_session[(call.session, call.spec.key)]

    def _session_moved(self, key: tuple[str, str], instance: str) -> None:
        """A session's calls of a component now go to ``instance``: its placed calls follow.

        Producers not yet done push to the new place from now on (the paper's
        migration when the dependency has not been sent); a value already
        pushed to the old place is released there and sent by the driver.
        """
        controller = self.instances.get(instance)
        for call in list(self._placed_by_session.get(key, ())):
            placed = call.placed
            if controller is None or placed is None or placed.target is controller:
                continue
            self._placed_at[placed.target.id] -= 1
            self._placed_at[controller.id] = self._placed_at.get(controller.id, 0) + 1
            placed.target = controller
            for p in call.inputs:
                if not p.done() and p.call is not None:
                    self._consume(p.call, placed.key, controller.worker, call)

    def _pushed(self, producer: _rt.CallRecord, call_id: int, source: W,
                pushed: tuple[tuple[str, tuple[int, ...]], ...]) -> None:
        """A producer is done: record which consumer's copy went where (before its value settles them)."""
        pushes, producer.pushes = producer.pushes, None
        assert pushes is not None and producer.pending is not None
        for worker_id, keys in pushed:
            for key in keys:
                registered = pushes.to.get(key)
                consumer = registered[1] if registered is not None else None
                if registered is None or registered[0].id != worker_id or consumer is None or consumer.placed is None:
                    self._release_at(worker_id, call_id)  # a copy nobody there will take
                    continue
                consumer.placed.copies[producer.pending] = (call_id, registered[0], source.id)

    def _release_at(self, worker_id: str, call_id: int) -> None:
        worker = self.pool.workers.get(worker_id)
        if worker is not None:
            self.pool.send(worker, ("release", call_id, 1))

    def _inputs_for(self, call: _rt.CallRecord, worker: W | None,
                    call_id: int) -> tuple[tuple[Any, ...], dict[str, Any], tuple[tuple[int, str], ...]]:
        """A placed call's arguments for ``worker``: by reference where a copy is there, else the value."""
        placed = call.placed
        assert placed is not None
        copies, placed.copies = placed.copies, {}
        refs: dict[_rt.Pending, DepRef] = {}
        deps: list[tuple[int, str]] = []
        for p, (producer_call, holder, source) in copies.items():
            if holder is worker and worker is not None and worker.alive:
                refs[p] = DepRef(producer_call)
                deps.append((producer_call, source))
                self._refs.setdefault(producer_call, [p, 0])[1] += 1
            else:
                self.pool.send(holder, ("release", producer_call, 1))
        self.push_stats["by_reference"] += len(deps)
        self.push_stats["from_driver"] += sum(1 for p in call.inputs if p not in refs)
        if deps:
            self._run_refs[call_id] = tuple(producer_call for producer_call, _ in deps)
        value: Callable[[_rt.Pending], Any] = lambda p: refs.get(p) or p.result()  # noqa: E731
        return _rt.with_values(call.args, value), _rt.with_values(call.kwargs, value), tuple(deps)

    def _unref(self, call_id: int) -> None:
        """A run that took values by reference is over: the driver stops keeping them for ``need``."""
        for producer_call in self._run_refs.pop(call_id, ()):
            held = self._refs[producer_call]
            held[1] -= 1
            if not held[1]:
                del self._refs[producer_call]

    def _send_value(self, worker: W, call_id: int) -> None:
        """``need``: a pushed value that cannot arrive; the driver has it."""
        held = self._refs.get(call_id)
        if held is not None:
            self.pool.send(worker, ("value", call_id, held[0].result()))

    async def probe(self, worker: W) -> dict[str, Any]:
        """What ``worker`` holds for push readiness (values kept, calls waiting): for tests and debugging."""
        token = next(self._probe_ids)
        done, box = trio.Event(), list[dict[str, Any]]()
        self._probes[token] = (done, box)
        self.pool.send(worker, ("probe", token))
        with trio.fail_after(10):
            await done.wait()
        return box[0]

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
