"""The pool interface a backend runs over, and the configuration it is started with.

A :class:`~nalarc.executor._backend.ControlledBackend` is a pool plus the
shared core: the pool (:class:`WorkerPool`) is *placement* (which workers
exist, which one hosts a new instance) and *transport* (how a message reaches
a worker); it reports back through :class:`PoolEvents`.  Pools:

* ``_process.ProcessPool``: worker processes on this machine, Unix sockets,
  HMAC-authenticated (nalarc's own);
* ``_ray.RayPool``: the same worker code (``nalarc.worker.Worker``) in Ray
  actors; messages go as actor calls, replies come back as they resolve.

The pool moves the messages of ``nalarc.wire`` (``nalarc.wire._messages``
defines them all); ``tests/executor/test_transport_pool.py`` runs the core
over a pool of threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from .._api import ComponentSpec
from .._errors import PolicyError
from .._flow import FlowConfig
from ..policies import Policy
from ._instance import WorkerLike
from ._trace import Tracer


@dataclass
class Placement:
    """How many instances of each component, and how many calls each runs at once."""

    workers: int = 2
    #: component name (``Planner``) or key -> instance count
    instances: dict[str, int] = field(default_factory=dict)
    #: instances of components not named in ``instances`` (None: ``min_instances``)
    default_instances: int | None = None
    #: calls one instance runs at the same time (agents, tools; a ``stateful`` agent: 1).  Sync
    #: component code blocks a worker thread on I/O (an LLM or HTTP call), which costs a thread,
    #: not a CPU: 16 slots each.
    agent_concurrency: int = 16
    tool_concurrency: int = 16
    #: a call that would queue because every instance of its component is full gets a new
    #: instance at once, up to ``max_instances`` (a controller in the driver; the worker makes
    #: the object at its first call): capacity follows a burst within the call that meets it.
    #: The policy (``autoscale`` by default) stops idle tool instances again.
    elastic: bool = True
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
    #: how often a retry-safe call (``_backend.retry_safe``) is re-run after the worker running it died;
    #: then it fails with :class:`~nalarc.BrokenWorkerError`.  A call's own ``retries`` directive
    #: (failures it raises) is separate: the backend's ``execute`` reads it from the directives.
    rerun_after_crash: int = 3
    #: where the workers run: ``process`` (this machine) or ``ray`` (actors of a Ray cluster)
    backend: str = "process"
    #: the Ray cluster to join (None: ``RAY_ADDRESS``, else a local cluster started for the run)
    ray_address: str | None = None
    #: rate limits per model, concurrency keys, session token budgets (docs/flow-control.md)
    flow: FlowConfig = field(default_factory=FlowConfig)


W = TypeVar("W", bound=WorkerLike)
W_contra = TypeVar("W_contra", bound=WorkerLike, contravariant=True)


class PoolEvents(Protocol[W_contra]):
    """What a pool reports to its backend.  Called in the backend's trio thread."""

    def received(self, worker: W_contra, message: Any) -> None:
        """A message from ``worker`` (``Done``, ``Call``, ``Need``, ``ProbeReply``), in the order it sent them."""

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
