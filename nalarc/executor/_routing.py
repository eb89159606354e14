"""Where a call is routed: this module, and only this one.

:class:`Router` holds the live instances of every component and chooses, call
by call, the instance a new call goes to (:meth:`Router.route`), under the
decisions the global controller installed in the node store:

1. an installed session route (``Decisions.routes``: a policy's ``migrate``
   or ``route``) wins;
2. else a stateful or managed-state agent's session stays on the instance it
   is on (``sticky``; also an agent whose attributes a session assigned
   through a handle, since later reads must see them);
3. else the installed routing weights (``NodeStore.pick_weighted``);
4. else the least loaded instance: dead workers last, then calls queued,
   running and placed there (push readiness counts a placed call as load);
5. and if that instance is full (as many calls as slots) and the component may
   grow (``Placement.elastic``, below ``max_instances``), a new instance of it
   instead: steps 1 and 2 never grow, a session pinned to an instance stays.

The backend (``_backend.ControlledBackend``) asks it for every call and tells
it when instances come and go; ``benchmarks/controlplane.py`` drives the same
object on an emulated cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .._api import ATTRIBUTE_WRITE, ComponentSpec
from .._errors import NalarcError
from ..runtime import lowlevel as _rt
from ._controller import NodeStore
from ._instance import InstanceController, WorkerLike

W = TypeVar("W", bound=WorkerLike)


class Sticky(dict[tuple[str, str], str]):
    """``Router.sticky``, telling its owner when a session's calls of a component move (placed calls follow)."""

    def __init__(self, moved: Callable[[tuple[str, str], str], None]) -> None:
        super().__init__()
        self._moved = moved

    def __setitem__(self, key: tuple[str, str], instance: str) -> None:
        super().__setitem__(key, instance)
        self._moved(key, instance)


class Router(Generic[W]):
    """The instances of every component, and the choice of one for each call (see the module docstring).

    State:
        ``instances``     instance id -> its :class:`~nalarc.executor._instance.InstanceController`
        ``by_component``  component key -> its live instance ids
        ``sticky``        (session, component key) -> instance id, for stateful and
                          managed-state agents (one session, one instance, in order)
        ``placed``        instance id -> calls routed there that wait for their inputs (push readiness)
    """

    def __init__(self, node_store: NodeStore, moved: Callable[[tuple[str, str], str], None] | None = None,
                 grow: Callable[[ComponentSpec], InstanceController[W] | None] | None = None) -> None:
        self.node_store = node_store
        #: ``grow(spec)``: a new instance of the component, or None at its ``max_instances``
        self.grow = grow
        self.instances: dict[str, InstanceController[W]] = {}
        self.by_component: dict[str, list[str]] = {}
        #: ``moved(key, instance)`` is told when a session's calls of a component go elsewhere.
        self.sticky: dict[tuple[str, str], str] = Sticky(moved) if moved is not None else {}
        self.placed: dict[str, int] = {}

    def add(self, controller: InstanceController[W]) -> None:
        """A new instance: calls may be routed to it from now on."""
        self.instances[controller.id] = controller
        self.by_component.setdefault(controller.spec.key, []).append(controller.id)

    def remove(self, controller: InstanceController[W]) -> None:
        """Stop routing to an instance, and forget every route and session pinned to it."""
        self.by_component[controller.spec.key].remove(controller.id)
        del self.instances[controller.id]
        for key, instance in list(self.sticky.items()):
            if instance == controller.id:
                del self.sticky[key]
        routes = self.node_store.decisions.routes
        for route, instance in list(routes.items()):
            if instance == controller.id:
                del routes[route]

    def hosted(self, worker_ids: Iterable[str]) -> dict[str, int]:
        """How many instances each worker hosts (every id in ``worker_ids`` included, at 0)."""
        hosted = {worker_id: 0 for worker_id in worker_ids}
        for controller in self.instances.values():
            hosted[controller.worker.id] = hosted.get(controller.worker.id, 0) + 1
        return hosted

    def route(self, call: _rt.CallRecord) -> InstanceController[W]:
        """The instance a new call goes to, under the installed decisions (the module docstring's order)."""
        key, name = call.spec.key, call.spec.name
        candidates = self.by_component.get(key)
        if not candidates:
            raise NalarcError(f"no instance of {name!r} is running")
        decisions = self.node_store.decisions
        routed = decisions.routes.get((call.session, name))
        if routed is not None and routed in self.instances:
            return self.instances[routed]
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
        chosen_controller = self.instances[best]
        if self.grow is not None and chosen_controller.load + self.placed.get(best, 0) >= chosen_controller.limit:
            chosen_controller = self.grow(call.spec) or chosen_controller
        if sticky:
            self.sticky[(call.session, key)] = chosen_controller.id
        return chosen_controller

    def _least_loaded(self, instance: str) -> tuple[bool, int, str]:
        """Dead workers last; calls placed there and still waiting for their inputs count as load too."""
        controller = self.instances[instance]
        placed = self.placed
        return not controller.worker.alive, controller.load + (placed.get(instance, 0) if placed else 0), instance
