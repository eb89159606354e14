"""Push readiness, the driver's side: telling workers where to push the values their calls produce.

A call whose inputs are pending is *placed* when it is made: routed to its
instance (its executor), and registered with each producer as a consumer on
that instance's worker (:class:`~nalarc.wire.Consume` if the producer is
already running, else in its :class:`~nalarc.wire.Run`'s ``push``).  When a
producer succeeds, its worker pushes the value to those workers and says so
in :class:`~nalarc.wire.Done` (``pushed``).  The call enters its instance's
queue when its last input settles here (so the controller's limit and
priorities apply as to any call, and a failed input fails it exactly as
before); its ``Run`` then passes each input by reference
(:class:`~nalarc.wire.DepRef`) if a copy went to the worker it runs on, and
the value itself otherwise (the call moved, or registered too late),
releasing copies that will not be used (:class:`~nalarc.wire.Release`).  The
driver still receives every value, and answers :class:`~nalarc.wire.Need`
when a push cannot arrive.

State (:class:`PushReadiness`):
    ``Router.placed``     instance id -> calls placed there, waiting for their inputs (load, for routing)
    ``by_session``        (session, component key) -> those calls (a session migration moves them)
    ``_refs``             producer call id -> [its future, runs that took it by reference and are not done]
    ``_run_refs``         consumer call id -> the producer call ids it took by reference
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic

import trio

from .._errors import NalarcError
from ..wire import Consume, DepRef, Deps, Probe, ProbeReply, Pushed, PushTargets, Release, Value
from ..runtime import lowlevel as _rt
from ._instance import InstanceController, WorkerLike
from ._pool import W, WorkerPool
from ._routing import Router


@dataclass(eq=False, slots=True)
class Placed:
    """A call placed before its inputs were ready (``CallRecord.placed``)."""

    #: Where it will run (its executor; a session migration moves it).
    target: InstanceController[Any]
    #: Its name in the producers' push lists.
    key: int
    #: input future -> (producer call id, the worker holding a copy for this call, the producer's worker id)
    copies: dict[_rt.Pending, tuple[int, WorkerLike, str]] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Pushes:
    """Where a producer's value goes when it is done (``CallRecord.pushes``)."""

    #: consumer key -> (the worker it will run on, the consumer)
    to: dict[int, tuple[WorkerLike, _rt.CallRecord]] = field(default_factory=dict)


class PushReadiness(Generic[W]):
    """The push-readiness protocol over one pool, routing with the backend's router (see the module docstring)."""

    def __init__(self, pool: WorkerPool[W], router: Router[W], enabled: bool) -> None:
        self.pool, self.router, self.enabled = pool, router, enabled
        self._keys = itertools.count(1)
        self.by_session: dict[tuple[str, str], set[_rt.CallRecord]] = {}
        #: producer call id -> [its future, runs sent a DepRef to it and not done]: for ``Need``
        self._refs: dict[int, list[Any]] = {}
        #: consumer call id -> the producer call ids it took by reference
        self._run_refs: dict[int, tuple[int, ...]] = {}
        self._probes: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self._probe_ids = itertools.count(1)
        #: Inputs of placed calls: passed by reference (pushed), or sent by the driver.
        self.stats = {"by_reference": 0, "from_driver": 0}

    # -- placing ---------------------------------------------------------------

    def place(self, call: _rt.CallRecord) -> bool:
        """Place a call whose inputs are pending (see the module docstring); False: it waits in the driver."""
        directives = call.spec.directives
        if not self.enabled or directives.retries or directives.timeout is not None:
            return False
        try:
            controller = self.router.route(call)
        except NalarcError:
            return False  # no instance: raised when it is made the ordinary way
        placed = call.placed = Placed(controller, next(self._keys))
        waiting = self.router.placed
        waiting[controller.id] = waiting.get(controller.id, 0) + 1
        self.by_session.setdefault((call.session, call.spec.key), set()).add(call)
        for p in call.inputs:
            if not p.done() and p.call is not None:
                self._consume(p.call, placed.key, controller.worker, call)
        return True

    def forget(self, call: _rt.CallRecord) -> None:
        """A placed call that will never run: its copies are released (once)."""
        placed = call.placed
        if placed is None:
            return
        self._unplace(call)
        call.placed = None
        for call_id, holder, _ in placed.copies.values():
            self.pool.send(holder, Release(call_id, 1))

    def start(self, call: _rt.CallRecord) -> InstanceController[W]:
        """A placed call's inputs are ready: the instance it runs on (where it was placed, if that still lives)."""
        self._unplace(call)
        target: InstanceController[W] = call.placed.target
        return target if self.router.instances.get(target.id) is target else self.router.route(call)

    def _consume(self, producer: _rt.CallRecord, key: int, worker: WorkerLike, consumer: _rt.CallRecord) -> None:
        """Register ``consumer`` (on ``worker``) with ``producer``; tell its worker if it is running."""
        pushes = producer.pushes
        if pushes is None:
            pushes = producer.pushes = Pushes()
        pushes.to[key] = (worker, consumer)
        if producer.attempt is not None:  # it is running (or done there, and the worker ignores this)
            running_on, call_id = producer.attempt
            self.pool.send(running_on, Consume(call_id, worker.id, key))

    def _unplace(self, call: _rt.CallRecord) -> None:
        """A placed call stops waiting (it starts, or never will)."""
        placed = call.placed
        assert placed is not None
        waiting = self.router.placed
        left = waiting[placed.target.id] - 1
        if left:
            waiting[placed.target.id] = left
        else:
            del waiting[placed.target.id]
        calls = self.by_session[(call.session, call.spec.key)]
        calls.discard(call)
        if not calls:
            del self.by_session[(call.session, call.spec.key)]

    def session_moved(self, key: tuple[str, str], instance: str) -> None:
        """A session's calls of a component now go to ``instance``: its placed calls follow.

        Producers not yet done push to the new place from now on (the paper's
        migration when the dependency has not been sent); a value already
        pushed to the old place is released there and sent by the driver.
        """
        controller = self.router.instances.get(instance)
        waiting = self.router.placed
        for call in list(self.by_session.get(key, ())):
            placed = call.placed
            if controller is None or placed is None or placed.target is controller:
                continue
            waiting[placed.target.id] -= 1
            waiting[controller.id] = waiting.get(controller.id, 0) + 1
            placed.target = controller
            for p in call.inputs:
                if not p.done() and p.call is not None:
                    self._consume(p.call, placed.key, controller.worker, call)

    # -- running -----------------------------------------------------------------

    def targets(self, call: _rt.CallRecord) -> PushTargets:
        """Where a call about to run pushes its value (its ``Run``'s ``push``)."""
        return tuple((worker.id, key) for key, (worker, _) in call.pushes.to.items())

    def inputs_for(self, call: _rt.CallRecord, worker: W | None,
                   call_id: int) -> tuple[tuple[Any, ...], dict[str, Any], Deps]:
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
                self.pool.send(holder, Release(producer_call, 1))
        self.stats["by_reference"] += len(deps)
        self.stats["from_driver"] += sum(1 for p in call.inputs if p not in refs)
        if deps:
            self._run_refs[call_id] = tuple(producer_call for producer_call, _ in deps)
        value: Callable[[_rt.Pending], Any] = lambda p: refs.get(p) or p.result()  # noqa: E731
        return _rt.with_values(call.args, value), _rt.with_values(call.kwargs, value), tuple(deps)

    def finished(self, call_id: int) -> None:
        """A run is over (done, or lost with its worker): the driver stops keeping the values it took by reference."""
        if not self._run_refs:
            return
        for producer_call in self._run_refs.pop(call_id, ()):
            held = self._refs[producer_call]
            held[1] -= 1
            if not held[1]:
                del self._refs[producer_call]

    def pushed(self, producer: _rt.CallRecord, call_id: int, source: W, pushed: Pushed) -> None:
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
            self.pool.send(worker, Release(call_id, 1))

    def send_value(self, worker: W, call_id: int) -> None:
        """``Need``: a pushed value that cannot arrive; the driver has it."""
        held = self._refs.get(call_id)
        if held is not None:
            self.pool.send(worker, Value(call_id, held[0].result()))

    # -- probing -----------------------------------------------------------------

    async def probe(self, worker: W) -> dict[str, Any]:
        """What ``worker`` holds for push readiness (values kept, calls waiting): for tests and debugging."""
        token = next(self._probe_ids)
        done, box = trio.Event(), list[dict[str, Any]]()
        self._probes[token] = (done, box)
        self.pool.send(worker, Probe(token))
        with trio.fail_after(10):
            await done.wait()
        return box[0]

    def probe_reply(self, reply: ProbeReply) -> None:
        waiting = self._probes.pop(reply.token, None)
        if waiting is not None:
            waiting[1].append(reply.stats)
            waiting[0].set()
