"""The programming model: decorators that only record metadata.

Uncompiled, an app runs as plain sequential Python: ``@tool`` and ``@agent``
return the very object they decorate, with a :class:`ComponentSpec` attached
as ``__nalarc__``.  The compiler reads the same directives statically from the
source; the runtime reads them from ``__nalarc__``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from ._errors import DirectiveError

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

#: Attribute that carries a :class:`ComponentSpec` (or ``"workflow"``).
SPEC_ATTR = "__nalarc__"


@dataclasses.dataclass(frozen=True, slots=True)
class Directives:
    """The paper's Table 1 hints, plus fault-tolerance knobs.

    Attributes:
        stateful: one session's calls go, in order, to one instance (never migrated).
        batchable: queued calls may be merged into one batched call.
        preemptable: name of a method that preempts a running call, or None.
        min_instances: instances kept alive.
        max_instances: instances that may be started.
        resources: CPU/GPU/memory hints, free-form.
        retries: how often a failed call is retried (only if retry-safe).
        timeout: seconds a call may run, or None.
        idempotent: for tools: a call may be re-run after a crash.
    """

    stateful: bool = False
    batchable: bool = False
    preemptable: str | None = None
    min_instances: int = 1
    max_instances: int = 1
    resources: tuple[tuple[str, float], ...] = ()
    retries: int = 0
    timeout: float | None = None
    idempotent: bool = False

    def __post_init__(self) -> None:
        if self.min_instances < 0:
            raise DirectiveError(f"min_instances must be >= 0, was {self.min_instances!r}")
        if self.max_instances < max(1, self.min_instances):
            raise DirectiveError(
                f"max_instances must be >= max(1, min_instances), was {self.max_instances!r}"
            )
        if self.retries < 0:
            raise DirectiveError(f"retries must be >= 0, was {self.retries!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise DirectiveError(f"timeout must be > 0 seconds, was {self.timeout!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentSpec:
    """What the runtime knows about a tool or an agent class."""

    kind: Literal["tool", "agent"]
    #: ``module:qualname`` of the decorated object; the component's identity.
    key: str
    directives: Directives
    #: Names of ManagedList / ManagedDict class attributes (agents only).
    managed: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.key.rpartition(":")[2]


def _key(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resources(resources: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((resources or {}).items()))


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    retries: int = 0,
    timeout: float | None = None,
    idempotent: bool = False,
    max_instances: int = 1,
) -> Callable[[F], F]: ...
def tool(
    fn: Any = None,
    /,
    *,
    retries: int = 0,
    timeout: float | None = None,
    idempotent: bool = False,
    max_instances: int = 1,
) -> Any:
    """Mark a function as a tool: each call becomes a future when compiled."""
    directives = Directives(
        retries=retries, timeout=timeout, idempotent=idempotent, max_instances=max_instances
    )

    def mark(f: F) -> F:
        if not callable(f) or isinstance(f, type):
            raise DirectiveError(f"@nalarc.tool expects a function, got {f!r}")
        setattr(f, SPEC_ATTR, ComponentSpec("tool", _key(f), directives))
        return f

    return mark(fn) if fn is not None else mark


@overload
def agent(cls: C, /) -> C: ...
@overload
def agent(
    *,
    stateful: bool = False,
    batchable: bool = False,
    preemptable: str | None = None,
    min_instances: int = 1,
    max_instances: int = 1,
    resources: dict[str, float] | None = None,
    retries: int = 0,
    timeout: float | None = None,
) -> Callable[[C], C]: ...
def agent(
    cls: Any = None,
    /,
    *,
    stateful: bool = False,
    batchable: bool = False,
    preemptable: str | None = None,
    min_instances: int = 1,
    max_instances: int = 1,
    resources: dict[str, float] | None = None,
    retries: int = 0,
    timeout: float | None = None,
) -> Any:
    """Mark a class as an agent: calls of its methods become futures when compiled."""
    directives = Directives(
        stateful=stateful,
        batchable=batchable,
        preemptable=preemptable,
        min_instances=min_instances,
        max_instances=max_instances,
        resources=_resources(resources),
        retries=retries,
        timeout=timeout,
    )

    def mark(c: C) -> C:
        from ._state import managed_attributes

        if not isinstance(c, type):
            raise DirectiveError(f"@nalarc.agent expects a class, got {c!r}")
        managed = managed_attributes(c)
        if managed and directives.batchable:
            raise DirectiveError(
                f"agent {c.__qualname__!r} is batchable and has managed state "
                f"({', '.join(managed)}); a batch mixes sessions, so drop one of them"
            )
        setattr(c, SPEC_ATTR, ComponentSpec("agent", _key(c), directives, managed))
        return c

    return mark(cls) if cls is not None else mark


def workflow(fn: F, /) -> F:
    """Mark a function as a workflow: an entry point callable by name."""
    if not callable(fn) or isinstance(fn, type):
        raise DirectiveError(f"@nalarc.workflow expects a function, got {fn!r}")
    setattr(fn, SPEC_ATTR, "workflow")
    return fn


#: The "method" of a call that reads a data attribute or property of an agent
#: instance (``Planner().name`` in compiled code); its argument is the name.
ATTRIBUTE_READ = "__nalarc_getattr__"


#: ids of the agent instances the runtime serves, in this process (they live
#: as long as the process does).
_SERVED: dict[int, object] = {}


def serve_instance(agent_class: type) -> object:
    """A new instance of ``agent_class`` that the runtime serves calls on."""
    instance: object = agent_class()
    _SERVED[id(instance)] = instance
    return instance


def is_served(instance: object) -> bool:
    return _SERVED.get(id(instance)) is instance


def instance_member(instance: object, method: str | None) -> Any:
    """What a call of ``method`` on a served agent instance runs."""
    if method == ATTRIBUTE_READ:
        return functools.partial(getattr, instance)
    return getattr(instance, method or "")


def blocks_on_futures(spec: ComponentSpec, target: Any, method: str | None) -> bool:
    """Is the component's code synchronous compiled code that waits on futures?

    It needs a frame to start its calls in, and must run in a thread that can
    reach the event loop.  The code generator marks such tools and methods.
    """
    if spec.kind == "tool":
        return getattr(target, "__nalarc_region__", False) is True
    agent_class = getattr(target, "agent_class", target)  # a handle, in the driver
    return method in getattr(agent_class, "__nalarc_regions__", ())


def component_spec(obj: object) -> ComponentSpec | None:
    """The spec of a tool function or agent class, else None."""
    spec = getattr(obj, SPEC_ATTR, None)
    return spec if isinstance(spec, ComponentSpec) else None


def is_workflow(obj: object) -> bool:
    return getattr(obj, SPEC_ATTR, None) == "workflow"
