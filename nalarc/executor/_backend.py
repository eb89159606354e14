"""The controlled backend: the core every backend that spreads calls over workers shares.

A *backend* runs component calls for the runtime (:class:`~nalarc.runtime.lowlevel.Backend`).
:class:`ControlledBackend` composes:

* a pool (``_pool.WorkerPool``: placement and transport, ``_process`` or ``_ray``);
* a router (``_routing.Router``: where a call is routed, and the live instances);
* push readiness (``_push.PushReadiness``: where workers push the values they produce);
* one component-level controller per instance (``_instance.InstanceController``),
  the global controller (``_controller``), and the state store.

What it does itself: the lifecycle of instances, sending calls to their
workers (``nalarc.wire.Run``, ``RunBatch``, ``Preempt``), the calls in flight,
their retries and timeouts (from their directives), what happens to them when
a worker dies (re-run up to ``Placement.rerun_after_crash`` times if retry-safe),
and what workers send back (``Done``, ``Call``, ``Need``, ``ProbeReply``, ``Event``).

State (:class:`ControlledBackend`):
    ``router``       the instances (``instances``, ``by_component``, ``sticky`` are its own)
    ``push``         push readiness (``push_stats`` are its own)
    ``_inflight``    worker id -> {call id: (queued call, its controller)}: sent, not yet done
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Iterator, Mapping
from typing import Any, Generic

import cloudpickle
import trio

from .. import _events, _telemetry
from .._api import ComponentSpec, component_spec
from .._errors import BrokenWorkerError, NalarcError, PolicyError
from ..runtime import lowlevel as _rt
from ..runtime.lowlevel import dump_exception
from ..wire import (BatchItem, Call, Deps, Done, Event, Need, Preempt, ProbeReply, PushTargets, QuotaAsk, QuotaSettle,
                    Result, Run, RunBatch)
from . import _flow
from ._concurrency import ConcurrencyKeys
from ._controller import GlobalController, NodeStore
from ._instance import CallObserver, InstanceController, QueuedCall
from ._local import InProcessBackend
from ._pool import Placement as Placement
from ._pool import PoolEvents as PoolEvents
from ._pool import W, WorkerPool
from ._pool import fewest_hosted as fewest_hosted
from ._push import PushReadiness
from ._residency import Residency
from ._routing import Router
from ._statestore import StateStore


class ControlledBackend(Generic[W]):
    """Runs component calls on a pool's workers, one controller per instance (see the module docstring)."""

    #: what ``/v1/status`` calls it
    name = "controlled"

    def __init__(self, store: StateStore, placement: Placement, pool: WorkerPool[W]) -> None:
        self.store, self.placement, self.pool = store, placement, pool
        self.node_store = NodeStore()
        self.router: Router[W] = Router(self.node_store, moved=self._session_moved,
                                        grow=self._grow if placement.elastic else None)
        self.push: PushReadiness[W] = PushReadiness(pool, self.router, placement.push)
        self.residency = Residency()  # KV-cache residency the engines report on Done (the view's)
        self._route = self.router.route  # on the path of every call
        self._components: dict[str, tuple[ComponentSpec, int]] = {}
        self._instance_numbers: dict[str, Iterator[int]] = {}
        self._call_ids = itertools.count(1)
        self._inflight: dict[str, dict[int, tuple[QueuedCall, InstanceController[W]]]] = {}
        self._inline = InProcessBackend(store)
        self._nursery: trio.Nursery | None = None
        self.closing = False
        self.controller = GlobalController(self, placement.policy, placement.interval) if placement.policy else None
        self.tracer, self.max_batch = placement.tracer, placement.max_batch
        self.batching = placement.batching
        #: flow control (docs/flow-control.md): the run's LLM limiter, and its concurrency keys
        self.flow = _flow.FlowLimiter(placement.flow) if placement.flow.gates_llm else None
        self.keys = ConcurrencyKeys(placement.flow.concurrency) if placement.flow.concurrency else None
        #: Told every call's component, kind, queue and total seconds (``/metrics``); None: nobody listens.
        self.call_observer: CallObserver | None = None

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the backend is not started"
        return self._nursery

    @property
    def workers(self) -> Mapping[str, W]:
        return self.pool.workers

    @property
    def instances(self) -> dict[str, InstanceController[W]]:
        return self.router.instances

    @property
    def by_component(self) -> dict[str, list[str]]:
        return self.router.by_component

    @property
    def sticky(self) -> dict[tuple[str, str], str]:
        return self.router.sticky

    @property
    def push_stats(self) -> dict[str, int]:
        return self.push.stats

    def new_runtime(self) -> _rt.Runtime:
        return _rt.Runtime(self)

    # -- lifecycle ---------------------------------------------------------

    async def start(self, nursery: trio.Nursery, components: dict[str, Any]) -> None:
        """Start the pool's workers, create the instances, start the global controller."""
        self._nursery = nursery
        await self.pool.start(nursery, self)
        for worker in self.pool.workers.values():
            self._configure_flow(worker)
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
        worker = self.pool.place(spec, node, self.router.hosted(self.pool.workers))
        index = next(self._instance_numbers.setdefault(spec.key, itertools.count()))
        controller = InstanceController(self, f"{spec.name}#{index}", spec, worker, limit)
        self.router.add(controller)
        return controller.id

    def provision(self, name: str, node: str | None = None) -> str | None:
        """Start one more instance of component ``name`` (None at ``max_instances``)."""
        if name not in self._components:
            raise PolicyError(f"provision: no component {name!r}")
        spec, limit = self._components[name]
        if len(self.by_component.get(spec.key, [])) >= spec.directives.max_instances:
            return None
        return self._add_instance(spec, limit, node)

    def _configure_flow(self, worker: W) -> None:
        """Tell a worker whether its LLM calls book with :attr:`flow` (sent before any call)."""
        if self.flow is not None:
            self.pool.send(worker, self.flow.worker_config())

    def _grow(self, spec: ComponentSpec) -> InstanceController[W] | None:
        """One more instance of a component whose instances are full (the router asks)."""
        new = self.provision(spec.name)
        return self.router.instances[new] if new is not None else None

    def retire(self, controller: InstanceController[W]) -> None:
        """Stop routing to an instance; its queued calls go to its siblings."""
        controller.retired = True
        self.router.remove(controller)
        self.residency.forget(controller.id)
        for entry in controller.take_queued():
            self._route(entry.call).submit(entry)

    async def aclose(self) -> None:
        self.closing = True
        await self.pool.aclose()

    # -- what workers send (PoolEvents) -----------------------------------

    def received(self, worker: W, message: Any) -> None:
        kind = type(message)
        if kind is Done:
            self._finish(worker, message)
        elif kind is Call:
            self.nursery.start_soon(self._nested_call, worker, message)
        elif kind is Need:
            self.push.send_value(worker, message.call_id)
        elif kind is ProbeReply:
            self.push.probe_reply(message)
        elif kind is Event:
            _events.deliver(message.request, message.event, message.data)
        elif (kind is QuotaAsk or kind is QuotaSettle) and self.flow is not None:
            grant = _flow.answer(self.flow, message)
            if grant is not None:
                self.pool.send(worker, grant)
        else:
            raise NalarcError(f"worker {worker.id} sent the driver {message!r}")

    def _finish(self, worker: W, done: Done) -> None:
        call_id = done.call_id
        found = self._inflight.get(worker.id, {}).pop(call_id, None)
        if found is None:
            return
        self.push.finished(call_id)
        entry, controller = found
        if done.cache:  # what the instance's engines hold is true whatever happens to this result
            self.residency.update(controller.id, done.cache)
        if entry.abandoned:  # a hung call that returned after its timeout: its result and state are dropped
            controller.release(entry)
            self._release_keys(entry)
            return
        ok = done.ok
        if ok and entry.call.pushes is not None:
            self.push.pushed(entry.call, call_id, worker, done.pushed)
        if entry.preempted and not ok:
            # Preempted: queue it again; it runs when a slot frees (maybe this one).
            entry.preempted = False
            controller.release(entry)
            controller.submit(entry)
            return
        if ok and done.state is not None:
            self.store.commit(entry.call.session, controller.spec.key, done.state)
        entry.ok, entry.payload, entry.text = ok, done.payload, done.traceback
        self._deliver(entry)
        controller.release(entry)

    def _deliver(self, entry: QueuedCall) -> None:
        """A call's outcome is known: settle a direct call's future, or wake :meth:`execute`."""
        call = entry.call
        self._release_keys(entry)
        if not call.direct:
            entry.done.set()
        elif entry.ok:
            _rt.complete_call(call, None, entry.payload)
        else:
            _rt.complete_call(call, _error_of(entry), None)

    async def _nested_call(self, worker: W, call: Call) -> None:
        """A component call made by component code running on ``worker``: scheduled like any other."""
        target = call.target
        spec = target.spec if isinstance(target, _rt.AgentHandle) else component_spec(target)
        assert spec is not None
        record = _rt.CallRecord(spec, target, call.method, call.args, call.kwargs, call.session, call.request, None)
        record.stage = call.flags >> _rt.STAGE_SHIFT
        try:
            value = await self.execute(record)
            self.pool.send(worker, Result(call.sub_id, True, value), (value,))
        except Exception as error:  # noqa: BLE001 - sent back to the caller
            text = "".join(traceback.format_exception(error))
            self.pool.send(worker, Result(call.sub_id, False, dump_exception(error, text)))

    def lost(self, worker: W, signal: int | None) -> None:
        """Calls in flight on a dead worker: re-run if retry-safe (up to ``Placement.rerun_after_crash``
        times), else fail with :class:`BrokenWorkerError`."""
        lost = self._inflight.pop(worker.id, {})
        for call_id in lost:
            self.push.finished(call_id)
        reruns = self.placement.rerun_after_crash
        for entry, controller in lost.values():
            controller.release(entry)
            if entry.abandoned:
                self._release_keys(entry)
                continue  # it timed out: nobody waits for it any more
            if retry_safe(controller.spec) and entry.attempts < reruns:
                entry.attempts += 1
                self._route(entry.call).submit(entry)  # runs where a live worker is first
            else:
                entry.ok = False
                entry.payload = BrokenWorkerError(entry.call.label, controller.id, worker.pid, signal)
                self._deliver(entry)

    def replaced(self, old: W, new: W) -> None:
        """The instances of a dead worker live on its replacement; their queued calls run there."""
        self._configure_flow(new)
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
        deps: Deps = ()
        push: PushTargets = ()
        if call.placed is not None:
            args, kwargs, deps = self.push.inputs_for(call, controller.worker, call_id)
        call.attempt = (controller.worker, call_id)  # consumers placed later are sent there
        if call.pushes is not None:
            push = self.push.targets(call)
        message = Run(call_id, controller.id, controller.spec.key, call.method, args, kwargs,
                      call.session, call.request, state, deps, push, _telemetry.traceparent(call.span))
        self.pool.send(controller.worker, message, (args, kwargs, state))

    async def send_batch(self, controller: InstanceController[W], batch: list[QueuedCall]) -> None:
        items = []
        for entry in batch:
            call = entry.call
            call_id = self._track(controller, entry)
            args, kwargs = call.args, call.kwargs
            if call.placed is not None:  # a batch takes its inputs from the driver
                args, kwargs, _ = self.push.inputs_for(call, None, call_id)
            items.append(BatchItem(call_id, call.method, args, kwargs, call.session, call.request))
        self.pool.send(controller.worker, RunBatch(controller.id, controller.spec.key, items))

    async def send_preempt(self, controller: InstanceController[W], hook: str) -> None:
        self.pool.send(controller.worker, Preempt(controller.id, hook))

    # -- execution ---------------------------------------------------------

    async def execute(self, call: _rt.CallRecord) -> Any:
        """Run a call to its outcome, with its directives' ``retries`` and ``timeout``."""
        directives = call.spec.directives
        priority = self.node_store.decisions.priority(call.session, call.spec.name)
        for attempt in range(1 + directives.retries):
            entry = QueuedCall(call, priority=priority)
            self._submit(entry)
            if directives.timeout is None:
                await entry.done.wait()
            else:
                with trio.move_on_after(directives.timeout) as scope:
                    await entry.done.wait()
                if scope.cancelled_caught:
                    self._abandon(entry)
                    entry.ok, entry.payload = False, cloudpickle.dumps(TimeoutError(f"{call.label} timed out after {directives.timeout} s"))
            if entry.ok:
                return entry.payload
            if attempt == directives.retries:
                raise _error_of(entry)
        raise AssertionError("unreachable")

    def _abandon(self, entry: QueuedCall) -> None:
        """A call that timed out: still waiting for a concurrency key or queued at an instance,
        it never runs; running, whatever it returns is discarded.

        A worker cannot stop a thread safely, so a running call keeps its slot until
        it returns (the instance's capacity stays honest); its managed-state writes
        are never committed (:meth:`_finish`) and a crash does not re-run it (:meth:`lost`).
        """
        entry.abandoned = True
        if self.keys is not None and self.keys.withdraw(entry):
            return  # it held no key: the call waiting behind it is next
        for controller in self.instances.values():
            if controller.take_future(entry.future_id):
                self._release_keys(entry)
                return

    def _release_keys(self, entry: QueuedCall) -> None:
        """``entry`` is over (or never runs): its concurrency-key slots go to the calls waiting for them."""
        if self.keys is not None:
            self.keys.release(entry, self._dispatch)

    def start_call(self, call: _rt.CallRecord) -> bool:
        """Queue a ready call now; :meth:`_deliver` settles its future (``_rt._start_now``).

        Calls with retries or a timeout need a task to wait in: :meth:`execute`.
        """
        directives = call.spec.directives
        if directives.retries or directives.timeout is not None:
            return False
        entry = QueuedCall(call, priority=0)  # submit applies the session's installed priority
        if call.placed is None:
            self._submit(entry)
        else:
            self.push.start(call).submit(entry)
        return True

    def _submit(self, entry: QueuedCall) -> None:
        """Route a call, once its concurrency keys (if any govern it) have room."""
        if self.keys is not None and self.keys.governs(entry.call.spec.name):
            self.keys.submit(entry, self._dispatch)
        else:
            self._dispatch(entry)

    def _dispatch(self, entry: QueuedCall) -> None:
        self._route(entry.call).submit(entry)

    def place_call(self, call: _rt.CallRecord) -> bool:
        """Place a call whose inputs are pending (``_push``); False: it waits in the driver.

        A call under a concurrency key waits in the driver: it is placed when its key has room.
        """
        if self.keys is not None and self.keys.governs(call.spec.name):
            return False
        return self.push.place(call)

    def forget_call(self, call: _rt.CallRecord) -> None:
        """A placed call that will never run: its copies are released (``_push``)."""
        self.push.forget(call)

    def _session_moved(self, key: tuple[str, str], instance: str) -> None:
        self.push.session_moved(key, instance)

    async def probe(self, worker: W) -> dict[str, Any]:
        """What ``worker`` holds for push readiness (values kept, calls waiting): for tests and debugging."""
        return await self.push.probe(worker)

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


def retry_safe(spec: ComponentSpec) -> bool:
    """Re-running after a crash is safe: idempotent tools, agents whose only state is managed."""
    if spec.kind == "tool":
        return spec.directives.idempotent
    return not spec.directives.stateful
