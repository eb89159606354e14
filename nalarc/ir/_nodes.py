"""IR nodes: frozen, slotted dataclasses, data only.

A :class:`Program` holds one :class:`ModuleIR` per compiled source module.
Each function becomes a :class:`FunctionIR` with explicit nodes:

* :class:`FutureNode`: a component call site; it starts a future at once.
* :class:`MaterializeNode`: a point where Python needs a value that may be
  pending (a branch test, an operator, ...).
* :class:`DependencyEdge`: a future feeding another future or a
  materialization (through a variable, or directly).
* :class:`ControlRegion`: the nesting of branches, loops, ``try`` and
  ``with`` bodies, and comprehensions.

Source positions are :data:`Span` tuples ``(line, col, end_line, end_col)``
of the original file (1-based lines, 0-based columns, as LibCST reports).
The code generator finds the syntax each node stands for by its span.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, final

from .._errors import IRValidationError

Span = tuple[int, int, int, int]
FunctionKind = Literal["workflow", "agent_method", "tool", "helper", "nested"]
CallKind = Literal["compiled", "dynamic", "intrinsic", "agent_handle", "opaque"]
RegionKind = Literal["function", "if", "for", "while", "try", "with", "comprehension", "lambda"]
StateAccess = Literal["none", "read", "write"]
BindingSource = Literal["future", "maybe", "plain", "alias"]
Severity = Literal["warning", "error"]

N = TypeVar("N")

#: Future call flag: the call writes state, so it must not run after an earlier failure.
EFFECT = 1
#: Future call flag: the component was written ``async def``; in plain Python the call only
#: makes a coroutine, which runs (and raises) where it is awaited.
AWAIT = 2
#: Call flags carry the call's stage in the call graph above the flag bits.
STAGE_SHIFT = 4


class _Node:
    """Shared behaviour of IR nodes."""

    __slots__ = ()

    def with_changes(self: N, **changes: object) -> N:
        """A copy of this node with ``changes`` applied (nodes are immutable)."""
        return replace(self, **changes)  # type: ignore[type-var]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise IRValidationError(message)


def _check_span(span: Span) -> None:
    line, col, end_line, end_col = span
    _check(line >= 1 and col >= 0, f"span {span!r} starts before the file")
    _check((end_line, end_col) >= (line, col), f"span {span!r} ends before it starts")


@final
@dataclass(frozen=True, slots=True)
class Diagnostic(_Node):
    """A fallback to sequential semantics (warning) or a misuse (error)."""

    #: ``warning``: parallelism given up here; ``error``: the app cannot compile.
    severity: Severity
    path: str
    span: Span
    message: str


@final
@dataclass(frozen=True, slots=True)
class ArgRef(_Node):
    """One argument of a component call and the local names it reads."""

    #: ``"0"``, ``"1"``, ... positional; ``"k=name"`` keyword; ``"*"`` / ``"**"`` unpacking.
    slot: str
    #: Local variables the argument expression reads.
    names: tuple[str, ...] = ()
    #: Futures passed in this argument (filled by dependency analysis).
    futures: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class FutureNode(_Node):
    """A component call site: starts a future when reached."""

    id: str
    span: Span
    #: ``module:qualname`` of the tool or agent class.
    component: str
    #: Agent method name; None for a tool.
    method: str | None
    args: tuple[ArgRef, ...]
    #: Innermost enclosing control region.
    region: str
    #: Position in the function's program order.
    order: int
    #: The variable the result is bound to, if the call is a plain assignment.
    binds: str | None = None
    #: OR of call flags (:data:`EFFECT`), set by state annotation.
    flags: int = 0
    #: Depth in the app's call graph: workflow calls are stage 1.
    stage: int = 0
    #: On the function's estimated critical path (longest dependency chain).
    critical: bool = False
    state: StateAccess = "none"
    retry_safe: bool = False

    def __post_init__(self) -> None:
        _check_span(self.span)
        _check(self.id.startswith("f"), f"future id {self.id!r} must start with 'f'")


@final
@dataclass(frozen=True, slots=True)
class CallNode(_Node):
    """A call that is not a component call: how the generated code makes it."""

    span: Span
    kind: CallKind
    #: Qualified name of the callee when resolved statically.
    target: str | None = None


@final
@dataclass(frozen=True, slots=True)
class MaterializeNode(_Node):
    """Python needs the value of the expression at ``span`` here."""

    id: str
    span: Span
    #: Why: ``test``, ``iter``, ``operator``, ``subscript``, ``attribute``, ``hash``,
    #: ``format``, ``store``, ``return``, ``try-visible``, ``raise``, ``with``, ``unpack``, ``await``
    #: (the awaited expression: a future's value, a coroutine run, a foreign awaitable bridged).
    reason: str
    #: Through containers (lists, tuples, dicts) too.
    deep: bool
    #: Local names the expression is; empty when it is a call or subscript result.
    names: tuple[str, ...]
    region: str
    #: What the expression is: ``name``, ``closure``, ``subscript``, ``call:component``,
    #: ``call:dynamic``, ``call:compiled:<qualname>``, ``call:plain``, ``await``, ``other``.
    source: str = "name"
    #: False when the expression can never be pending (dropped by placement).
    needed: bool = True


@final
@dataclass(frozen=True, slots=True)
class DependencyEdge(_Node):
    """``src`` (a future) feeds ``dst`` (a future or a materialization)."""

    src: str
    dst: str
    #: The variable that carries the value, if any.
    via: str | None = None


@final
@dataclass(frozen=True, slots=True)
class Binding(_Node):
    """An assignment to a local name, and whether the value may be pending."""

    name: str
    span: Span
    source: BindingSource
    #: For ``future``: the future id; for ``alias``: the names copied.
    refs: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class StatementInfo(_Node):
    """A statement of a straight-line block, for launch hoisting."""

    span: Span
    #: Block the statement belongs to (statements of one block are in order).
    block: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    #: The statement is ``name = <component call>`` with pure arguments.
    launch: str | None = None
    #: Contains a possible settle point (an effect, a try, a with, a return...).
    barrier: bool = False


@final
@dataclass(frozen=True, slots=True)
class Hoist(_Node):
    """Move the launch statement at ``stmt`` to just before ``before``."""

    stmt: Span
    before: Span
    future: str


@final
@dataclass(frozen=True, slots=True)
class ControlRegion(_Node):
    id: str
    kind: RegionKind
    span: Span
    parent: str | None
    #: For ``try``: names assigned in the body that code outside the body reads;
    #: they are materialized when assigned, so handlers see sequential values.
    visible: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class FunctionIR(_Node):
    qualname: str
    kind: FunctionKind
    span: Span
    params: tuple[str, ...]
    #: Enclosing function for nested functions and lambdas' owners.
    parent: str | None = None
    #: Owning class qualname for methods.
    owner: str | None = None
    is_generator: bool = False
    #: Written ``async def`` in the source (calling it makes a coroutine).
    written_async: bool = False
    #: Python calls it implicitly (dunder, property): it can never be async.
    implicit: bool = False
    #: Decorators nalarc does not know: what they do with a coroutine is
    #: unknown, so the function can never be async.
    opaque_decorators: tuple[str, ...] = ()
    #: Wrappers the app's own decorators put around it (qualnames of nested
    #: functions, see ``nalarc.frontend._wrappers``): they take its colour.
    wrappers: tuple[str, ...] = ()
    #: Becomes ``async def`` (set by async lowering).
    is_async: bool = False
    #: Synchronous code that may block on futures (runs in worker threads).
    is_region: bool = False
    #: Has no effect but its result: calls of it need no settle.
    pure: bool = False
    #: Reachable from a workflow, agent method or tool body.
    in_scope: bool = False
    #: Has a call whose callee is only known at run time.
    has_dynamic_calls: bool = False
    #: Calls a ``nalarc`` intrinsic (``value``, ``as_completed``, ...).
    has_intrinsics: bool = False
    #: App functions called statically (qualnames).
    callees: tuple[str, ...] = ()
    futures: tuple[FutureNode, ...] = ()
    calls: tuple[CallNode, ...] = ()
    materializations: tuple[MaterializeNode, ...] = ()
    edges: tuple[DependencyEdge, ...] = ()
    regions: tuple[ControlRegion, ...] = ()
    bindings: tuple[Binding, ...] = ()
    statements: tuple[StatementInfo, ...] = ()
    hoists: tuple[Hoist, ...] = ()
    #: Names that may hold a pending value somewhere in the function.
    maybe_pending: tuple[str, ...] = ()
    #: Generator expressions a consumer exhausts (``sum(f(x) for x in xs)``):
    #: generated as lists, so their calls run in parallel.
    eager_generators: tuple[Span, ...] = ()
    #: Names written by ``global`` / ``nonlocal`` statements.
    outer_writes: tuple[str, ...] = ()
    #: Estimated critical path, in component calls.
    critical_path: int = 0
    #: Groups of futures that may run at the same time (ids).
    parallel_groups: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        _check_span(self.span)


@final
@dataclass(frozen=True, slots=True)
class ComponentIR(_Node):
    key: str
    kind: Literal["tool", "agent"]
    span: Span
    #: Directive name/value pairs as written (literal values only).
    directives: tuple[tuple[str, object], ...] = ()
    #: Methods (agents) or the function itself (tools): name -> parameter names.
    methods: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Which methods take ``**kwargs`` (any keyword is fine for them).
    open_kwargs: tuple[str, ...] = ()
    managed: tuple[str, ...] = ()
    #: Method name (tools: the tool's name) -> qualname of the function that
    #: implements it (an agent's inherited methods live in its base classes).
    implementations: tuple[tuple[str, str], ...] = ()
    #: Set by state annotation.
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    retry_safe: bool = False

    def directive(self, name: str, default: object = None) -> object:
        return dict(self.directives).get(name, default)


@final
@dataclass(frozen=True, slots=True)
class ModuleIR(_Node):
    name: str
    path: str
    functions: tuple[FunctionIR, ...] = ()
    components: tuple[ComponentIR, ...] = ()
    workflows: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Program(_Node):
    app: str
    modules: tuple[ModuleIR, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())

    def functions(self) -> dict[str, FunctionIR]:
        return {f.qualname: f for mod in self.modules for f in mod.functions}

    def components(self) -> dict[str, ComponentIR]:
        return {c.key: c for mod in self.modules for c in mod.components}

    def replace_functions(self, new: dict[str, FunctionIR]) -> Program:
        """A copy with the functions in ``new`` (by qualname) swapped in."""
        modules = tuple(
            mod.with_changes(functions=tuple(new.get(f.qualname, f) for f in mod.functions))
            for mod in self.modules
        )
        return self.with_changes(modules=modules)

    def replace_components(self, new: dict[str, ComponentIR]) -> Program:
        modules = tuple(
            mod.with_changes(components=tuple(new.get(c.key, c) for c in mod.components))
            for mod in self.modules
        )
        return self.with_changes(modules=modules)
