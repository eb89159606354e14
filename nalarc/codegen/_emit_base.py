"""Code generation's shared state: what the generator knows of the module and where it is."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import PositionProvider

from ..ir import CallNode, ControlRegion, FunctionIR, FutureNode, MaterializeNode, ModuleIR, Program, Span


@dataclass
class _Scope:
    """The function being generated and how its code runs."""

    fn: FunctionIR | None
    #: ``async``: awaits allowed; ``sync``: blocking forms; ``plain``: untouched.
    mode: str
    try_bodies: list[tuple[ControlRegion, int]] = field(default_factory=list)
    loop_depth: int = 0
    needs_settle: bool = False
    #: Statements to put before the statement being generated.
    prefix: list[cst.BaseStatement] = field(default_factory=list)


class EmitterBase(cst.CSTTransformer):
    """The state of one module's generation and the context helpers every part uses.

    The rewrites are split by theme into mixins, one module each: ``_emit_expressions``
    and ``_emit_statements``; :class:`~nalarc.codegen._emit.Emitter` combines them.
    """

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, module: ModuleIR, program: Program) -> None:
        super().__init__()
        self.module, self.program = module, program
        self.all_functions = program.functions()
        self.functions = {f.span: f for f in module.functions}
        self.futures: dict[Span, FutureNode] = {}
        self.calls: dict[Span, CallNode] = {}
        self.mats: dict[Span, MaterializeNode] = {}
        self.tries: dict[Span, ControlRegion] = {}
        self.hoists: dict[Span, Span] = {}
        self.eager_genexps: set[Span] = set()
        #: id(original statement) -> how many statements it became (default 1).
        self.expansion: dict[int, int] = {}
        for fn in module.functions:
            self.futures.update({f.span: f for f in fn.futures})
            self.calls.update({c.span: c for c in fn.calls})
            # ``await`` is rewritten wherever it appears (leave_Await), not through these.
            self.mats.update({m.span: m for m in fn.materializations if m.needed and m.reason != "await"})
            self.tries.update({r.span: r for r in fn.regions if r.kind in ("try", "with")})
            self.hoists.update({h.stmt: h.before for h in fn.hoists})
            self.eager_genexps.update(fn.eager_generators)
        self.scopes: list[_Scope] = [_Scope(None, "plain")]
        #: Lambdas / generator expressions being generated in blocking form.
        self.sync_depth = 0
        self.try_body_ids: dict[int, ControlRegion] = {}
        self.region_exprs: list[bool] = []
        #: Expressions inside a blocking-form expression that run in the enclosing scope.
        self.islands: dict[int, int] = {}
        #: Names of functions compiled to ``async def`` from plain ``def`` (their calls
        #: at module level run through ``run_sync``).
        self.async_names = {
            q.partition(":")[2].partition("#")[0] for q, f in self.all_functions.items()
            if f.is_async and not f.written_async and "." not in q.partition(":")[2]
        }
        #: ``sync_depth`` of each enclosing scope, restored when a function body ends.
        self._saved_sync: list[int] = []
        #: Asynchronous generator expressions kept asynchronous (ids of the original nodes).
        self.async_genexps: set[int] = set()

    # -- context -------------------------------------------------------------

    def pos(self, node: cst.CSTNode) -> Span:
        r = self.get_metadata(PositionProvider, node)
        return (r.start.line, r.start.column, r.end.line, r.end.column)

    @property
    def scope(self) -> _Scope:
        return self.scopes[-1]

    @property
    def mode(self) -> str:
        if self.sync_depth and self.scope.mode != "plain":
            return "sync"
        return self.scope.mode

    def mark_region_use(self) -> None:
        if self.region_exprs:
            self.region_exprs[-1] = True
