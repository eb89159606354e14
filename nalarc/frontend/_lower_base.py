"""Lowering's shared state: what one function's lowering has recorded so far.

:class:`LowererBase` holds the state of a :class:`~nalarc.frontend._lower.FunctionLowerer`
and the helpers every part of the lowering uses (spans, diagnostics, regions,
scopes, reads and writes, materialization candidates).  The lowering itself is
split by theme into classes stacked on it, each in its own module:
``_lower_resolve`` (what a call calls) <- ``_lower_calls`` <- ``_lower_expressions``
<- ``_lower_statements`` <- ``_lower.FunctionLowerer``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import libcst as cst
from libcst.metadata import PositionProvider

from .._errors import CompileError
from ..ir import (
    Binding,
    CallNode,
    ControlRegion,
    Diagnostic,
    FunctionIR,
    FutureNode,
    MaterializeNode,
    Span,
    StatementInfo,
)
from ._modules import ModuleInfo, Symbol, target_names
from ._scopes import local_names, param_names, walk_scope
from ._source import span_of

if TYPE_CHECKING:
    from ._discover import Lowerer

_BUILTINS = frozenset(dir(builtins))

SHALLOW, DEEP, PASS = "shallow", "deep", "pass"


class LowererBase:
    """The state of one function's lowering and the helpers all its parts share."""

    def __init__(
        self,
        lowerer: Lowerer,
        info: ModuleInfo,
        node: cst.FunctionDef,
        qualname: str,
        kind: str,
        owner: str | None,
        parent: LowererBase | None,
    ) -> None:
        self.lowerer, self.info, self.node = lowerer, info, node
        self.qualname = f"{info.name}:{qualname}"
        self.local_qual = qualname
        self.kind, self.owner, self.parent = kind, owner, parent
        self.positions = info.wrapper.resolve(PositionProvider)
        self.scope_nodes = walk_scope(node.body)
        self.locals, self.globals, self.nonlocals = local_names(node, self.scope_nodes)
        self.futures: list[FutureNode] = []
        self.calls: list[CallNode] = []
        self.materializations: list[MaterializeNode] = []
        self.bindings: list[Binding] = []
        self.regions: list[ControlRegion] = []
        self.statements: list[StatementInfo] = []
        self.callees: set[str] = set()
        self.eager_generators: list[Span] = []
        self.region_stack: list[str] = []
        self.nested: list[FunctionIR] = []
        self.has_dynamic = False
        self.has_intrinsics = False
        self.impure = False
        self.read_sites: list[tuple[str, str]] = []
        self.writes_by_region: dict[str, set[str]] = {}
        self._stmt_reads: set[str] = set()
        self._stmt_writes: set[str] = set()
        self._stmt_barrier = False
        self._stmt_launch: str | None = None
        #: Names bound by the comprehensions and lambdas being lowered.
        self.inner_locals: list[set[str]] = []
        self.handle_vars = self._handle_vars()
        #: Written ``async def``: calling it makes a coroutine; it may ``await``.
        self.written_async = node.asynchronous is not None
        self.owner_key = f"{info.name}:{owner}" if owner else None
        self.self_name = self._self_name()

    def _self_name(self) -> str | None:
        """The parameter that is the instance, in a plain method (not static or class)."""
        if self.owner_key is None or not self.node.params.params:
            return None
        member = self.lowerer.classes[self.owner_key].members.get(self.node.name.value)
        if member is not None and member.kind in ("static", "class"):
            return None
        return self.node.params.params[0].name.value

    def _require_async(self, node: cst.CSTNode, what: str) -> None:
        """``await``, ``async for``, ``async with`` need an ``async def`` (as in CPython)."""
        if not self.written_async:
            raise self.error(node, f"{what} outside async function")

    def _handle_vars(self) -> set[str]:
        """Locals bound only to ``AgentClass()``: calls of their methods are component calls."""
        bound: dict[str, bool] = {}
        for node in self.scope_nodes:
            if isinstance(node, cst.Assign):
                is_handle = isinstance(node.value, cst.Call) and self._agent_class(node.value.func) is not None
                for target in node.targets:
                    for name in target_names(target.target):
                        ok = is_handle and isinstance(target.target, cst.Name)
                        bound[name] = bound.get(name, True) and ok
            elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)):
                for name in target_names(node.target):
                    bound[name] = False
        params = {p.lstrip("*") for p in param_names(self.node.params)}
        return {n for n, ok in bound.items() if ok and n not in params}

    # -- helpers ---------------------------------------------------------

    def span(self, node: cst.CSTNode) -> Span:
        return span_of(self.positions[node])

    def error(self, node: cst.CSTNode, message: str) -> CompileError:
        return self.lowerer._error(self.info, node, message)

    def warn(self, node: cst.CSTNode, message: str) -> None:
        self.lowerer.diagnostics.append(Diagnostic("warning", str(self.info.source.path), self.span(node), message))

    def push_region(self, kind: str, node: cst.CSTNode) -> str:
        rid = f"r{len(self.regions)}"
        parent = self.region_stack[-1] if self.region_stack else None
        self.regions.append(ControlRegion(rid, kind, self.span(node), parent))  # type: ignore[arg-type]
        self.region_stack.append(rid)
        return rid

    def pop_region(self) -> None:
        self.region_stack.pop()

    @property
    def region(self) -> str:
        return self.region_stack[-1]

    def scope_of(self, name: str) -> str:
        if name in self.locals or any(name in inner for inner in self.inner_locals):
            return "local"
        if name in self.nonlocals:
            return "closure"
        if name in self.globals:
            return "global"
        p = self.parent
        while p is not None:
            if name in p.locals:
                return "closure"
            p = p.parent
        if name in self.info.symbols:
            return "global"
        return "builtin" if name in _BUILTINS else "global"

    def symbol(self, name: str) -> Symbol | None:
        return self.info.symbols.get(name) if self.scope_of(name) == "global" else None

    def _agent_class(self, func: cst.BaseExpression) -> str | None:
        sym = self._resolve_global(func)
        return sym.target if sym is not None and sym.kind == "agent" else None

    def _resolve_global(self, expr: cst.BaseExpression) -> Symbol | None:
        """The module-level symbol ``expr`` names, following local-module attributes."""
        if isinstance(expr, cst.Name):
            return self.symbol(expr.value)
        if isinstance(expr, cst.Attribute):
            base = self._resolve_global(expr.value)
            if base is not None and base.kind == "module":
                module = self.lowerer.modules.get(base.target)
                if module is not None:
                    return module.symbols.get(expr.attr.value)
                return Symbol("external", f"{base.target}.{expr.attr.value}")
            if base is not None and base.kind == "nalarc" and base.target == "":
                return Symbol("nalarc", expr.attr.value)
            if base is not None and base.kind == "external":
                return Symbol("external", f"{base.target}.{expr.attr.value}")
        return None

    def note_read(self, name: str) -> None:
        self._stmt_reads.add(name)
        self.read_sites.append((name, self.region))

    def note_write(self, name: str) -> None:
        self._stmt_writes.add(name)
        for rid in self.region_stack:
            self.writes_by_region.setdefault(rid, set()).add(name)

    def bind(self, target: cst.BaseExpression, source: str, refs: tuple[str, ...] = ()) -> None:
        for name in target_names(target):
            self.note_write(name)
            if name in self.globals or name in self.nonlocals:
                continue
            if isinstance(target, cst.Name):
                self.bindings.append(Binding(name, self.span(target), source, refs))  # type: ignore[arg-type]
            else:
                self.bindings.append(Binding(name, self.span(target), "maybe"))

    def barrier(self) -> None:
        self._stmt_barrier = True

    def _last_future_for(self, value: cst.BaseExpression) -> str | None:
        if not isinstance(value, cst.Call):
            return None
        span = self.span(value)
        for fut in self.futures:
            if fut.span == span:
                return fut.id
        return None

    def candidate(self, node: cst.BaseExpression, ctx: str, reason: str, source: str, names: tuple[str, ...] = ()) -> None:
        if ctx == PASS:
            return
        mid = f"m{len(self.materializations)}"
        self.materializations.append(
            MaterializeNode(mid, self.span(node), reason, ctx == DEEP, names, self.region, source)
        )

    def _check_global_mutation(self, receiver: cst.BaseExpression, how: str) -> None:
        """Component code changing a module global: invisible to other processes once served."""
        if self.kind not in ("tool", "agent_method") or not isinstance(receiver, cst.Name):
            return
        symbol = self.symbol(receiver.value)
        if symbol is not None and symbol.kind == "variable":
            self._warn_global(receiver, receiver.value, how)

    def _warn_global(self, node: cst.CSTNode, name: str, how: str) -> None:
        what = "tool" if self.kind == "tool" else "agent method"
        self.warn(node, f"{what} {self.local_qual} {how} module global {name!r}: on worker processes the "
                  "change stays in the worker that ran the call (the driver and other workers never see it)")

    if TYPE_CHECKING:
        # Defined by the classes stacked on this one (``_lower_expressions``, ``_lower``):
        # declared here so that the lower layers may call them.

        def expr(self, node: cst.BaseExpression, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]: ...

        def unpacked(self, value: cst.BaseExpression, element: str) -> None: ...

        def _nested_function(self, node: cst.FunctionDef) -> None: ...
