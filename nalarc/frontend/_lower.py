"""Lowering: LibCST modules to IR.

For every function of every local module the lowering records, with source
spans, what the later passes and the code generator need:

* each component call (a :class:`~nalarc.ir.FutureNode`) and every other call
  (a :class:`~nalarc.ir.CallNode` saying how it is made);
* each place where Python needs a value (a :class:`~nalarc.ir.MaterializeNode`
  *candidate*: placement later drops those that can never be pending);
* assignments (:class:`~nalarc.ir.Binding`), control regions with the names a
  ``try`` body must keep sequential, and straight-line statements for hoisting.

It also reports misuse as :class:`~nalarc.CompileError` and fallbacks to
sequential semantics as warnings.  (One class, long because Python has many
statement and expression forms; each has a short method.)
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst
from libcst.metadata import PositionProvider

from .._errors import CompileError
from ..ir import (
    AWAIT,
    ArgRef,
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
from ._modules import NALARC_INTRINSICS, ModuleInfo, Symbol, target_names
from .._cst import block_definitions
from ._scopes import local_names, param_names, walk_all, walk_scope
from ._source import span_of

if TYPE_CHECKING:
    from ._discover import Lowerer, _Component

_BUILTINS = frozenset(dir(builtins))
#: Builtins that must be called directly: they look at the caller's frame.
FRAME_BUILTINS = frozenset({"super", "locals", "globals", "vars", "dir", "eval", "exec"})
#: Builtins with no effect but their result (their calls are not barriers).
PURE_BUILTINS = frozenset(
    "abs all any ascii bin bool bytes callable chr complex dict divmod enumerate filter float "
    "format frozenset getattr hasattr hash hex id int isinstance issubclass iter len list map "
    "max min next oct ord pow range repr reversed round set slice sorted str sum tuple type zip".split()
)
_IMPLICIT_DECORATORS = frozenset({"property", "cached_property", "setter", "getter", "deleter"})
#: Decorators that hand the function itself back (or a descriptor calling it
#: as is): the function may still become ``async def``.
_TRANSPARENT_DECORATORS = frozenset({
    "builtins.staticmethod", "builtins.classmethod", "abc.abstractmethod", "typing.overload",
    "typing.final", "typing.override", "typing_extensions.overload", "typing_extensions.final",
    "typing_extensions.override", "typing.no_type_check",
    "functools.wraps",  # copies metadata onto the function and hands it back
})

# ---------------------------------------------------------------------------
# Function lowering
# ---------------------------------------------------------------------------

SHALLOW, DEEP, PASS = "shallow", "deep", "pass"


@dataclass
class _Resolution:
    kind: str  # component, agent_handle, compiled, intrinsic, dynamic, opaque, frame, local
    component: str | None = None
    method: str | None = None
    target: str | None = None
    global_receiver: bool = False
    #: App functions the call may reach (for colouring) when ``target`` is not
    #: known for sure (a redefined name, an overridden method).
    callees: tuple[str, ...] = ()


class FunctionLowerer:
    """Lowers one function (and, recursively, the functions nested in it)."""

    def __init__(
        self,
        lowerer: Lowerer,
        info: ModuleInfo,
        node: cst.FunctionDef,
        qualname: str,
        kind: str,
        owner: str | None,
        parent: FunctionLowerer | None,
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

    # -- entry ---------------------------------------------------------

    def run(self) -> list[FunctionIR]:
        self._check_async_component()
        span = self.span(self.node)
        self.push_region("function", self.node)
        for name in param_names(self.node.params):
            self.bindings.append(Binding(name.lstrip("*"), span, "maybe"))
        self.block(self.node.body)
        self.pop_region()
        decorators = {cst.helpers.get_full_name_for_node(d.decorator) or "" for d in self.node.decorators}
        name = self.node.name.value
        implicit = (name.startswith("__") and name.endswith("__")) or bool(
            {d.rpartition(".")[2] for d in decorators} & _IMPLICIT_DECORATORS
        )
        fn = FunctionIR(
            qualname=self.qualname,
            kind=self.kind,  # type: ignore[arg-type]
            span=span,
            params=tuple(p.lstrip("*") for p in param_names(self.node.params)),
            parent=self.parent.qualname if self.parent else None,
            owner=f"{self.info.name}:{self.owner}" if self.owner else None,
            is_generator=self._is_generator(),
            written_async=self.written_async,
            implicit=implicit,
            opaque_decorators=self._opaque_decorators(),
            wrappers=self._wrappers(),
            pure=not self.impure and not self.futures and not self.has_dynamic and not self.globals and not self.nonlocals,
            has_dynamic_calls=self.has_dynamic,
            has_intrinsics=self.has_intrinsics,
            callees=tuple(sorted(self.callees)),
            futures=tuple(self.futures),
            calls=tuple(self.calls),
            materializations=tuple(self.materializations),
            regions=tuple(self._regions_with_visibility()),
            bindings=tuple(self.bindings),
            statements=tuple(self.statements),
            outer_writes=tuple(sorted(self.globals | self.nonlocals)),
            eager_generators=tuple(self.eager_generators),
        )
        return [fn, *self.nested]

    def _is_generator(self) -> bool:
        return any(isinstance(n, cst.Yield) for n in self.scope_nodes)

    def _self_name(self) -> str | None:
        """The parameter that is the instance, in a plain method (not static or class)."""
        if self.owner_key is None or not self.node.params.params:
            return None
        member = self.lowerer.classes[self.owner_key].members.get(self.node.name.value)
        if member is not None and member.kind in ("static", "class"):
            return None
        return self.node.params.params[0].name.value

    def _wrappers(self) -> tuple[str, ...]:
        """Qualnames of the wrappers the app's own decorators put around the function."""
        found = (self.lowerer.see_through(self.info, dec) for dec in self.node.decorators)
        return tuple(q for q in found if q is not None)

    def _opaque_decorators(self) -> tuple[str, ...]:
        """Decorators that may do anything with the function (and so with a coroutine)."""
        out: list[str] = []
        for dec in self.node.decorators:
            if self.lowerer.see_through(self.info, dec) is not None:
                continue
            expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            if self.lowerer.decorator(self.info, dec) is not None:
                continue  # nalarc's own: they only record metadata
            name = cst.helpers.get_full_name_for_node(expr) or self.info.tree.code_for_node(expr)
            if name.rpartition(".")[2] in _IMPLICIT_DECORATORS:
                continue  # a property: implicit anyway
            symbol = self.lowerer.resolve(self.info, expr)
            if symbol is not None and symbol.target in _TRANSPARENT_DECORATORS:
                continue
            out.append(name)
        return tuple(out)

    def _check_async_component(self) -> None:
        """An async generator cannot be a component: its values could not leave the process."""
        name = self.node.name.value
        public_method = self.kind == "agent_method" and not name.startswith("_")
        if self.written_async and self._is_generator() and (self.kind == "tool" or public_method):
            raise self.error(
                self.node,
                f"async generator {name} cannot be a component: a call's result must be a value "
                "(return a list, or make it a helper the workflow iterates with async for)",
            )

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

    # -- calls -------------------------------------------------------------

    def resolve_call(self, func: cst.BaseExpression) -> _Resolution:
        if isinstance(func, cst.Name):
            scope = self.scope_of(func.value)
            if scope in ("local", "closure"):
                return _Resolution("dynamic")
            if scope == "builtin":
                if func.value in FRAME_BUILTINS:
                    return _Resolution("frame", target=f"builtins.{func.value}")
                return _Resolution("opaque", target=f"builtins.{func.value}")
            return self._resolve_symbol_call(self._resolve_global(func), func)
        if isinstance(func, cst.Attribute):
            base = func.value
            if isinstance(base, cst.Name) and base.value == self.self_name and self.owner_key:
                return self._self_method(func.attr.value)
            if self.owner_key and _is_super_call(base, self):
                # super().m(...): some base class's m, an ordinary call of the instance's code.
                name = func.attr.value
                candidates = tuple(
                    c.members[name].qualname for c in self.lowerer.classes.values()
                    if name in c.members and c.key != self.owner_key
                )
                return _Resolution("local", callees=candidates)
            if isinstance(base, cst.Name) and base.value in self.handle_vars:
                agent = self._handle_agent(base.value)
                return self._component_method(agent, func)
            if isinstance(base, cst.Call) and self._agent_class(base.func) is not None:
                return self._component_method(self._agent_class(base.func), func)
            symbol = self._resolve_global(func)
            if symbol is not None:
                return self._resolve_symbol_call(symbol, func)
            base_symbol = self._resolve_global(base) if isinstance(base, cst.Name) else None
            if base_symbol is not None and base_symbol.kind == "variable":
                return _Resolution("dynamic", global_receiver=True)
        return _Resolution("dynamic")

    def _self_method(self, name: str) -> _Resolution:
        """``self.name(...)`` in a method: an ordinary call of the instance's own code."""
        assert self.owner_key is not None
        member = self.lowerer.members(self.owner_key).get(name)
        if member is None:
            return _Resolution("dynamic")
        if member.kind == "method" and not self.lowerer.overridden(name):
            return _Resolution("local", target=member.qualname)
        # A subclass may override it: which function runs is known at run time only.
        candidates = tuple(m.members[name].qualname for m in self.lowerer.classes.values() if name in m.members)
        return _Resolution("local", callees=candidates)

    def _definitions_of(self, key: str) -> tuple[str, ...]:
        """Qualnames of every module-level definition of ``module:name``."""
        module, _, name = key.partition(":")
        info = self.lowerer.modules.get(module)
        if info is None:
            return (key,)
        found = tuple(
            f"{module}:{self.lowerer.qualnames[id(node)]}"
            for node in block_definitions(info.tree.body)
            if isinstance(node, cst.FunctionDef) and node.name.value == name
        )
        return found or (key,)

    def _handle_agent(self, var: str) -> str | None:
        for node in self.scope_nodes:
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                if any(target_names(t.target) == [var] for t in node.targets):
                    return self._agent_class(node.value.func)
        return None

    def _component_method(self, agent: str | None, func: cst.Attribute) -> _Resolution:
        comp = self.lowerer.components.get(agent or "")
        model = self.lowerer.agent_model(agent or "")
        if comp is None or model is None:
            return _Resolution("dynamic")
        method = func.attr.value
        member = self.lowerer.members(model).get(method)
        if member is not None and member.kind == "method" and not _is_dunder(method):
            return _Resolution("component", component=comp.key, method=method)
        if member is None and self.lowerer.mro(model)[1] and method not in self.lowerer.class_attributes(model):
            self.warn(func.attr, f"agent {comp.key.partition(':')[2]!r} has no method {method!r}: "
                      "the call raises AttributeError when it runs")
        # Static and class methods run here; anything else is looked up at run time.
        return _Resolution("dynamic")

    def _resolve_symbol_call(self, symbol: Symbol | None, func: cst.BaseExpression) -> _Resolution:
        if symbol is None:
            return _Resolution("dynamic")
        if symbol.kind == "tool":
            return _Resolution("component", component=symbol.target)
        if symbol.kind == "agent":
            return _Resolution("agent_handle", component=symbol.target)
        if symbol.kind in ("function", "workflow") and symbol.rebound:
            # Which definition the name holds is known at run time only.
            return _Resolution("dynamic", callees=self._definitions_of(symbol.target))
        if symbol.kind in ("function", "workflow"):
            return _Resolution("compiled", target=self._definitions_of(symbol.target)[0])
        if symbol.kind == "nalarc":
            if symbol.target in NALARC_INTRINSICS:
                return _Resolution("intrinsic", target=symbol.target)
            return _Resolution("opaque", target=f"nalarc.{symbol.target}")
        if symbol.kind == "external":
            return _Resolution("opaque", target=symbol.target)
        return _Resolution("dynamic")

    # -- statements --------------------------------------------------------

    def block(self, suite: cst.BaseSuite) -> None:
        if isinstance(suite, cst.SimpleStatementSuite):
            self._statement_line(suite, suite.body, self.span(suite))
            return
        assert isinstance(suite, cst.IndentedBlock)
        block_id = self.span(suite)
        for stmt in suite.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                self._statement_line(stmt, stmt.body, block_id)
            else:
                self._record_statement(stmt, block_id, lambda s=stmt: self.compound(s))

    def _statement_line(
        self, node: cst.CSTNode, smalls: Sequence[cst.BaseSmallStatement], block_id: Span
    ) -> None:
        def run() -> None:
            for small in smalls:
                self.small(small)

        self._record_statement(node, block_id, run)

    def _record_statement(self, node: cst.CSTNode, block_id: Span, run: object) -> None:
        outer = (self._stmt_reads, self._stmt_writes, self._stmt_barrier, self._stmt_launch)
        self._stmt_reads, self._stmt_writes, self._stmt_barrier, self._stmt_launch = set(), set(), False, None
        run()  # type: ignore[operator]
        writes = self._stmt_writes
        self.statements.append(
            StatementInfo(
                span=self.span(node),
                block=f"{block_id[0]}:{block_id[1]}",
                reads=tuple(sorted(self._stmt_reads)),
                writes=tuple(sorted(writes)),
                launch=self._stmt_launch,
                barrier=self._stmt_barrier or not isinstance(node, cst.SimpleStatementLine),
            )
        )
        reads, outer_writes, barrier, _ = outer
        self._stmt_reads = reads | self._stmt_reads
        self._stmt_writes = outer_writes | self._stmt_writes
        self._stmt_barrier = barrier or self._stmt_barrier
        self._stmt_launch = None

    def barrier(self) -> None:
        self._stmt_barrier = True

    def small(self, node: cst.BaseSmallStatement) -> None:
        if isinstance(node, cst.Expr):
            self.expr(node.value, PASS, "expr")
        elif isinstance(node, cst.Assign):
            self._assign(node)
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self._store(node.target, node.value, node)
        elif isinstance(node, cst.AugAssign):
            self._aug_assign(node)
        elif isinstance(node, cst.Return):
            self.barrier()
            if node.value is not None:
                # Deep for synchronous callers; placement drops it for async functions.
                self.expr(node.value, DEEP, "return")
        elif isinstance(node, cst.Raise):
            self.barrier()
            if node.exc is not None:
                self.expr(node.exc, SHALLOW, "raise")
            if node.cause is not None:
                self.expr(node.cause.item, SHALLOW, "raise")
        elif isinstance(node, cst.Assert):
            self.barrier()
            self.expr(node.test, SHALLOW, "test")
            if node.msg is not None:
                self.expr(node.msg, DEEP, "format")
        elif isinstance(node, cst.Del):
            self.barrier()
            self._del_target(node.target)
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            self.impure = True
            if isinstance(node, cst.Global) and self.kind in ("tool", "agent_method"):
                for name in node.names:
                    self._warn_global(name, name.name.value, "assigns")
        elif isinstance(node, (cst.Break, cst.Continue)):
            self.barrier()
        elif isinstance(node, (cst.Import, cst.ImportFrom)):
            if isinstance(node, cst.Import):
                for alias in node.names:
                    self.note_write(_bound_name_of(alias))
            else:
                self.barrier()

    def _del_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._del_target(el.value)
        elif isinstance(target, cst.Subscript):
            self.expr(target.value, SHALLOW, "subscript")
            self._slices(target)
        elif isinstance(target, cst.Attribute):
            self.expr(target.value, SHALLOW, "attribute")

    def _assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._store(node.targets[0].target, node.value, node)
            return
        self.expr(node.value, DEEP, "store")
        for t in node.targets:
            self._store_target(t.target, "plain", ())

    def _store(self, target: cst.BaseExpression, value: cst.BaseExpression, node: cst.CSTNode) -> None:
        names = target_names(target)
        outer = [n for n in names if n in self.globals or n in self.nonlocals]
        if outer or not isinstance(target, (cst.Name, cst.Tuple, cst.List)) or _has_store_elements(target):
            self.barrier()
            self.impure = True
            self.expr(value, PASS if isinstance(target, (cst.Attribute, cst.Subscript)) else DEEP, "store")
            if outer:
                self.warn(node, f"value written to {'global' if set(outer) & self.globals else 'nonlocal'} "
                          f"{', '.join(outer)!s} is materialized first (sequential here)")
            self._store_target(target, "plain", ())
            return
        if isinstance(target, cst.Name):
            source, refs = self.expr(value, PASS, "assign")
            future = self._last_future_for(value)
            if future is not None:
                self._stmt_launch = future if self._pure_args(value) else None
                self.bind(target, "future", (future,))
                index = int(future[1:])
                self.futures[index] = self.futures[index].with_changes(binds=target.value)
            else:
                self.bind(target, source, refs)
            return
        # Unpacking looks inside the value (and nested targets inside its elements). Not made
        # eager when a generator: Python takes only one element more than there are targets.
        self.expr(value, DEEP, "unpack")
        self.bind(target, "plain")

    def _pure_args(self, value: cst.BaseExpression) -> bool:
        return isinstance(value, cst.Call) and all(
            isinstance(a.value, (cst.Name, cst.Integer, cst.SimpleString, cst.Float)) for a in value.args
        )

    def _last_future_for(self, value: cst.BaseExpression) -> str | None:
        if not isinstance(value, cst.Call):
            return None
        span = self.span(value)
        for fut in self.futures:
            if fut.span == span:
                return fut.id
        return None

    def _store_target(self, target: cst.BaseExpression, source: str, refs: tuple[str, ...]) -> None:
        if isinstance(target, (cst.Attribute, cst.Subscript)):
            self._check_global_mutation(target.value, "stores into")
        if isinstance(target, cst.Attribute):
            self.expr(target.value, SHALLOW, "attribute")
        elif isinstance(target, cst.Subscript):
            self.expr(target.value, SHALLOW, "subscript")
            self._slices(target)
            if isinstance(target.value, cst.Name) and self.scope_of(target.value.value) == "local":
                # d[k] = tool(x): the container may now hold futures.
                self.bindings.append(Binding(target.value.value, self.span(target.value), "maybe"))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._store_target(el.value, source, refs)
        elif isinstance(target, cst.StarredElement):
            self._store_target(target.value, source, refs)
        else:
            self.bind(target, source, refs)

    def _aug_assign(self, node: cst.AugAssign) -> None:
        target = node.target
        if isinstance(target, cst.Name):
            # The target itself is materialized by a statement before (see codegen).
            self.note_read(target.value)
            self.expr(node.value, DEEP, "operator")
            if target.value in self.globals or target.value in self.nonlocals:
                self.barrier()
                self.impure = True
            self.bind(target, "plain")
            return
        self.barrier()
        self.impure = True
        self._store_target(target, "plain", ())
        self.expr(node.value, DEEP, "operator")

    def compound(self, node: cst.BaseCompoundStatement) -> None:
        if isinstance(node, cst.If):
            self.expr(node.test, SHALLOW, "test")
            self.push_region("if", node)
            self.block(node.body)
            self.pop_region()
            if node.orelse is not None:
                if isinstance(node.orelse, cst.If):
                    self.compound(node.orelse)
                else:
                    self.push_region("if", node.orelse)
                    self.block(node.orelse.body)
                    self.pop_region()
        elif isinstance(node, cst.While):
            self.push_region("while", node)
            self.expr(node.test, SHALLOW, "test")
            self.block(node.body)
            self.pop_region()
            if node.orelse is not None:
                self.block(node.orelse.body)
        elif isinstance(node, cst.For):
            if node.asynchronous is not None:
                self._require_async(node, "'async for'")
            source, _ = self.expr(node.iter, SHALLOW, "iter")
            self.push_region("for", node)
            self.bind(node.target, "plain" if _is_range(node.iter, self) else "maybe")
            self.block(node.body)
            self.pop_region()
            if node.orelse is not None:
                self.block(node.orelse.body)
        elif isinstance(node, (cst.Try, cst.TryStar)):
            self._try(node)
        elif isinstance(node, cst.With):
            if node.asynchronous is not None:
                self._require_async(node, "'async with'")
            self.barrier()
            for item in node.items:
                self.expr(item.item, SHALLOW, "with")
                if item.asname is not None:
                    self.bind(item.asname.name, "plain")
            self.push_region("with", node)
            self.block(node.body)
            self.pop_region()
        elif isinstance(node, cst.FunctionDef):
            self._nested_function(node)
        elif isinstance(node, cst.ClassDef):
            self.warn(node, "class defined inside a compiled function: its methods run uncompiled")
            self.note_write(node.name.value)
            self.bindings.append(Binding(node.name.value, self.span(node), "plain"))
        elif isinstance(node, cst.Match):
            # Patterns look anywhere inside the subject: materialize it deeply.
            self.expr(node.subject, DEEP, "test")
            for case in node.cases:
                for child in walk_all(case.pattern):
                    if isinstance(child, cst.MatchAs) and child.name is not None:
                        self.bind(child.name, "plain")
                    elif isinstance(child, cst.MatchStar) and child.name is not None:
                        self.bind(child.name, "plain")
                    elif isinstance(child, cst.MatchMapping) and child.rest is not None:
                        self.bind(child.rest, "plain")
                if case.guard is not None:
                    self.expr(case.guard, SHALLOW, "test")
                self.push_region("if", case)
                self.block(case.body)
                self.pop_region()
        else:
            raise self.error(node, f"{type(node).__name__} is not supported in nalarc app code")

    def _try(self, node: cst.Try | cst.TryStar) -> None:
        self.barrier()
        self.push_region("try", node)
        self.block(node.body)
        self.pop_region()
        for handler in node.handlers:
            if handler.type is not None:
                self.expr(handler.type, SHALLOW, "test")
            if handler.name is not None:
                self.bind(handler.name.name, "plain")
            self.block(handler.body)
        if node.orelse is not None:
            self.block(node.orelse.body)
        if node.finalbody is not None:
            self.block(node.finalbody.body)

    def _nested_function(self, node: cst.FunctionDef) -> None:
        self.note_write(node.name.value)
        self.bindings.append(Binding(node.name.value, self.span(node), "plain"))
        for dec in node.decorators:
            self.expr(dec.decorator, DEEP, "store")
        qual = self.lowerer.nested_qualname(node, self.local_qual)
        child = FunctionLowerer(self.lowerer, self.info, node, qual, "nested", None, self)
        self.nested += child.run()
        self.callees.add(child.qualname)

    # -- expressions -------------------------------------------------------

    def candidate(self, node: cst.BaseExpression, ctx: str, reason: str, source: str, names: tuple[str, ...] = ()) -> None:
        if ctx == PASS:
            return
        mid = f"m{len(self.materializations)}"
        self.materializations.append(
            MaterializeNode(mid, self.span(node), reason, ctx == DEEP, names, self.region, source)
        )

    def expr(self, node: cst.BaseExpression, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        """Lower ``node`` used in context ``ctx``; return its binding source and refs."""
        if isinstance(node, cst.Name):
            scope = self.scope_of(node.value)
            if scope in ("local", "closure"):
                self.note_read(node.value)
                self.candidate(node, ctx, reason, scope if scope == "closure" else "name", (node.value,))
                return ("alias", (node.value,)) if scope == "local" else ("maybe", ())
            return "plain", ()
        if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString, cst.Ellipsis)):
            return "plain", ()
        if isinstance(node, cst.FormattedString):
            for part in node.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    self.expr(part.expression, DEEP, "format")
                    if part.format_spec:
                        for spec in part.format_spec:
                            if isinstance(spec, cst.FormattedStringExpression):
                                self.expr(spec.expression, DEEP, "format")
            return "plain", ()
        if isinstance(node, cst.Call):
            return self.call(node, ctx, reason)
        if isinstance(node, cst.Attribute):
            return self._attribute(node, ctx, reason)
        if isinstance(node, cst.Subscript):
            self.expr(node.value, SHALLOW, "subscript")
            self._slices(node)
            self.candidate(node, ctx, reason, "subscript")
            return "maybe", ()
        if isinstance(node, cst.BinaryOperation):
            self.expr(node.left, DEEP, "operator")
            self.expr(node.right, DEEP, "operator")
            return "plain", ()
        if isinstance(node, cst.UnaryOperation):
            self.expr(node.expression, SHALLOW if isinstance(node.operator, cst.Not) else DEEP, "operator")
            return "plain", ()
        if isinstance(node, cst.Comparison):
            self.expr(node.left, DEEP, "operator")
            for comp in node.comparisons:
                self.expr(comp.comparator, DEEP, "operator")
            return "plain", ()
        if isinstance(node, cst.BooleanOperation):
            self.expr(node.left, SHALLOW, "test")
            self.expr(node.right, PASS, reason)
            self.candidate(node, ctx, reason, "other")
            return "maybe", ()
        if isinstance(node, cst.IfExp):
            self.expr(node.test, SHALLOW, "test")
            self.expr(node.body, PASS, reason)
            self.expr(node.orelse, PASS, reason)
            self.candidate(node, ctx, reason, "other")
            return "maybe", ()
        if isinstance(node, (cst.List, cst.Tuple)):
            maybe = False
            for el in node.elements:
                if isinstance(el, cst.StarredElement):
                    self.unpacked(el.value, PASS)
                    maybe = True
                else:
                    maybe = self.expr(el.value, PASS, reason)[0] != "plain" or maybe
            if ctx == DEEP and maybe:
                self.candidate(node, ctx, reason, "other")
            return ("maybe" if maybe else "plain"), ()
        if isinstance(node, cst.Set):
            for el in node.elements:
                if isinstance(el, cst.StarredElement):
                    self.unpacked(el.value, DEEP)
                else:
                    self.expr(el.value, DEEP, "hash")
            return "plain", ()
        if isinstance(node, cst.Dict):
            maybe = False
            for item in node.elements:
                if isinstance(item, cst.DictElement):
                    self.expr(item.key, DEEP, "hash")
                    maybe = self.expr(item.value, PASS, reason)[0] != "plain" or maybe
                else:
                    self.expr(item.value, SHALLOW, "iter")
                    maybe = True
            if ctx == DEEP and maybe:
                self.candidate(node, ctx, reason, "other")
            return ("maybe" if maybe else "plain"), ()
        if isinstance(node, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)):
            return self.comprehension(node, ctx, reason, eager=reason == "eager-argument")
        if isinstance(node, cst.Lambda):
            self.push_region("lambda", node)
            params = {p.lstrip("*") for p in param_names(node.params)}
            self.inner_locals.append(params)
            for p in params:
                self.bindings.append(Binding(p, self.span(node), "plain"))
            self.expr(node.body, DEEP, "callback")
            self.inner_locals.pop()
            self.pop_region()
            return "plain", ()
        if isinstance(node, cst.NamedExpr):
            source, refs = self.expr(node.value, PASS, reason)
            self.bind(node.target, source, refs)
            self.candidate(node, ctx, reason, "other")
            return "maybe", ()
        if isinstance(node, cst.Await):
            return self._await(node, ctx, reason)
        if isinstance(node, (cst.Yield,)):
            if node.value is not None and isinstance(node.value, cst.BaseExpression):
                self.expr(node.value, DEEP, "yield")
            elif isinstance(node.value, cst.From):
                self.expr(node.value.item, SHALLOW, "iter")
            return "maybe", ()
        if isinstance(node, cst.StarredElement):
            self.unpacked(node.value, PASS)
            return "maybe", ()
        return "maybe", ()

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

    def _attribute(self, node: cst.Attribute, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        """``x.name``: on an agent handle, a read on the instance serving the session (a future)."""
        if self._resolve_global(node) is not None:
            return "plain", ()  # a module attribute, a class attribute of a global
        receiver = node.value
        if self._is_handle(receiver):
            self.expr(receiver, PASS, "attribute")
            self.candidate(node, ctx, reason, "handle-attribute")
            return "maybe", ()
        self.expr(receiver, SHALLOW, "attribute")
        root = _root_name(receiver)
        if root is None or root == self.self_name or self.scope_of(root) not in ("local", "closure"):
            return "plain", ()
        # The receiver may be a handle passed in (a parameter, a container's element).
        self.candidate(node, ctx, reason, "attribute", (root,))
        return "maybe", ()

    def _is_handle(self, expr: cst.BaseExpression) -> bool:
        """Is ``expr`` statically an agent handle (``Planner()``, or a local bound only to one)?"""
        if isinstance(expr, cst.Name):
            return expr.value in self.handle_vars
        return isinstance(expr, cst.Call) and not expr.args and self._agent_class(expr.func) is not None


    def _await(self, node: cst.Await, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        """``await x``: a materialization point (``reason="await"``) of the awaited expression.

        A component call awaited at once is still a future first (``await fetch(x)``).
        The statement is a barrier: an awaitable may run foreign code, and a launch
        hoisted above ``await fetch(x)`` would get an earlier place in program order
        than the call it follows, so its failure would be raised instead of fetch's.
        """
        self._require_async(node, "'await'")
        inner = node.expression
        self.expr(inner, PASS, "await")
        self.barrier()
        if not (isinstance(inner, cst.Call) and self._last_future_for(inner) is not None):
            self.impure = True
        names = (inner.value,) if isinstance(inner, cst.Name) else ()
        mid = f"m{len(self.materializations)}"
        self.materializations.append(MaterializeNode(mid, self.span(inner), "await", False, names, self.region, "await"))
        self.candidate(node, ctx, reason, "other")
        return "maybe", ()

    def _slices(self, node: cst.Subscript) -> None:
        for element in node.slice:
            sl = element.slice
            if isinstance(sl, cst.Index):
                self.expr(sl.value, DEEP, "hash")
            elif isinstance(sl, cst.Slice):
                for part in (sl.lower, sl.upper, sl.step):
                    if part is not None:
                        self.expr(part, DEEP, "hash")

    def comprehension(
        self, node: cst.BaseComp, ctx: str, reason: str, eager: bool = False, element: str = PASS
    ) -> tuple[str, tuple[str, ...]]:
        """Lower a comprehension; ``eager``: a generator the code generator turns into a list
        (``element``: how that list's elements are used)."""
        self.push_region("comprehension", node)
        targets: set[str] = set()
        comp_for: cst.CompFor | None = node.for_in
        while comp_for is not None:
            targets |= set(target_names(comp_for.target))
            comp_for = comp_for.inner_for_in
        # The first iterable is evaluated outside the comprehension's scope.
        self.expr(node.for_in.iter, SHALLOW, "iter")
        self.inner_locals.append(targets)
        comp_for = node.for_in
        first = True
        while comp_for is not None:
            if comp_for.asynchronous is not None:
                if not isinstance(node, cst.GeneratorExp):
                    self._require_async(comp_for, "asynchronous comprehension")
                self.barrier()  # each step awaits (like an await: see _await)
            if not first:
                self.expr(comp_for.iter, SHALLOW, "iter")
            first = False
            self.bind(comp_for.target, "maybe")
            for cond in comp_for.ifs:
                self.expr(cond.test, SHALLOW, "test")
            comp_for = comp_for.inner_for_in
        if isinstance(node, cst.DictComp):
            self.expr(node.key, DEEP, "hash")
            self.expr(node.value, PASS, reason)
        elif isinstance(node, cst.SetComp):
            self.expr(node.elt, DEEP, "hash")
        elif isinstance(node, cst.GeneratorExp) and not eager:
            self.expr(node.elt, DEEP, "yield")
        elif isinstance(node, cst.GeneratorExp):
            self.expr(node.elt, element, reason)
        elif isinstance(node, cst.ListComp):
            self.expr(node.elt, PASS, reason)
        self.inner_locals.pop()
        self.pop_region()
        if ctx == DEEP and not isinstance(node, (cst.SetComp, cst.GeneratorExp)):
            self.candidate(node, ctx, reason, "other")
        return "maybe", ()

    def unpacked(self, value: cst.BaseExpression, element: str) -> None:
        """``*value``: iterated to its end, right here, by compiled code; ``element``: how
        the elements are used.

        A generator expression becomes eager (a list comprehension in async code, see
        ``eager_generators``): the same steps in the same order, but its body is
        compiled for the event loop, where the unpacking runs, not in the blocking
        form a generator's body takes (made to run in a worker thread, it would run
        component calls inline, one by one, and fail on anything that must wait).
        """
        if isinstance(value, cst.GeneratorExp):
            self.eager_generators.append(self.span(value))
            self.comprehension(value, SHALLOW, "iter", eager=True, element=element)
        else:
            self.expr(value, SHALLOW, "iter")

    def call(self, node: cst.Call, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        res = self.resolve_call(node.func)
        span = self.span(node)
        self.callees.update(res.callees)
        if res.kind == "component":
            return self._component_call(node, res, ctx, reason)
        if res.kind == "agent_handle":
            if node.args:
                raise self.error(node, "an agent handle takes no arguments: agents are created by the runtime")
            self.calls.append(CallNode(span, "agent_handle", res.component))
            return "plain", ()
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in _CONTAINER_MUTATORS:
            self._check_global_mutation(node.func.value, f"calls .{node.func.attr.value}() on")
        if isinstance(node.func, cst.Attribute) and res.kind in ("dynamic", "opaque", "local"):
            if self._resolve_global(node.func) is None:
                self.expr(node.func.value, SHALLOW, "attribute")
            receiver = node.func.value
            if isinstance(receiver, cst.Name) and self.scope_of(receiver.value) == "local":
                # xs.append(tool(x)): the container may now hold futures.
                self.bindings.append(Binding(receiver.value, self.span(receiver), "maybe"))
        elif res.kind == "dynamic":
            self.expr(node.func, SHALLOW, "call")
        eager = _consumes_generator(node, res)
        if eager:
            self.eager_generators.append(self.span(node.args[0].value))
        for arg in node.args:
            if arg.star == "*":
                self.unpacked(arg.value, DEEP if res.kind == "frame" else PASS)
            elif arg.star:
                self.expr(arg.value, SHALLOW, "iter")
            else:
                reason_ = "eager-argument" if eager else "argument"
                self.expr(arg.value, DEEP if res.kind == "frame" else PASS, reason_)
        if res.kind == "compiled" and res.target:
            self.callees.add(res.target)
            self.calls.append(CallNode(span, "compiled", res.target))
            self.barrier()
            self.candidate(node, ctx, reason, f"call:compiled:{res.target}")
            return "maybe", ()
        if res.kind == "local":
            if res.target:
                self.callees.add(res.target)
            self.calls.append(CallNode(span, "compiled", res.target))
            self.barrier()
            self.impure = True
            self.candidate(node, ctx, reason, f"call:compiled:{res.target}" if res.target else "call:dynamic")
            return "maybe", ()
        if res.kind == "intrinsic":
            self.has_intrinsics = True
            self.calls.append(CallNode(span, "intrinsic", res.target))
            if res.target == "value" and node.args:
                return "plain", ()
            return "plain", ()
        if res.kind in ("opaque", "frame"):
            name = (res.target or "").rpartition(".")[2]
            pure = (res.target or "").startswith("builtins.") and name in PURE_BUILTINS
            if not pure:
                self.barrier()
                self.impure = True
            # super(C, self) names what it needs: a class and an instance are never pending.
            if res.kind == "frame" and name != "super":
                self.warn(node, f"{name}() looks at the caller's frame: arguments are materialized first")
            self.calls.append(CallNode(span, "opaque", res.target))
            if name in ("list", "tuple", "iter", "reversed", "zip", "enumerate", "filter", "map", "dict") and not pure is False:
                self.candidate(node, ctx, reason, "call:plain")
            return "plain", ()
        # dynamic: the callee is only known at run time
        self.has_dynamic = True
        self.barrier()
        self.impure = True
        self.calls.append(CallNode(span, "dynamic", "global" if res.global_receiver else None))
        self.candidate(node, ctx, reason, "call:dynamic")
        return "maybe", ()

    def _component_call(self, node: cst.Call, res: _Resolution, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        comp = self.lowerer.components[res.component or ""]
        method = res.method or comp.key.partition(":")[2]
        self._check_arguments(node, comp, method)
        if isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Call):
            self.calls.append(CallNode(self.span(node.func.value), "agent_handle", res.component))
        elif isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name):
            self.note_read(node.func.value.value)
        args: list[ArgRef] = []
        position = 0
        for arg in node.args:
            before = set(self._stmt_reads)
            self._stmt_reads = set()
            slot: str
            if arg.star == "*":
                self.unpacked(arg.value, PASS)
                slot = str(arg.star)
            elif arg.star:
                self.expr(arg.value, SHALLOW, "iter")
                slot = str(arg.star)
            elif isinstance(arg.value, cst.GeneratorExp):
                # A generator cannot cross processes: its elements are made at the call
                # (in parallel) and the component gets an iterator over them.
                self.eager_generators.append(self.span(arg.value))
                self.expr(arg.value, PASS, "eager-argument")
                slot = f"k={arg.keyword.value}" if arg.keyword is not None else str(position)
                position += arg.keyword is None
            else:
                self.expr(arg.value, PASS, "argument")
                if arg.keyword is not None:
                    slot = f"k={arg.keyword.value}"
                else:
                    slot = str(position)
                    position += 1
            args.append(ArgRef(slot, tuple(sorted(self._stmt_reads))))
            self._stmt_reads |= before
        fid = f"f{len(self.futures)}"
        self.futures.append(
            FutureNode(
                id=fid,
                span=self.span(node),
                component=comp.key,
                method=res.method,
                args=tuple(args),
                region=self.region,
                order=len(self.futures),
                flags=AWAIT if method in comp.async_methods else 0,
            )
        )
        self.candidate(node, ctx, reason, "call:component")
        return "future", (fid,)

    def _check_arguments(self, node: cst.Call, comp: _Component, method: str) -> None:
        params = comp.methods.get(method, ())
        if method in comp.open_kwargs:
            return
        accepted = {p for p in params if not p.startswith("*")}
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value not in accepted:
                what = f"tool {method!r}" if comp.kind == "tool" else f"method {comp.key.partition(':')[2]}.{method}"
                raise self.error(
                    arg.keyword,
                    f"{what} has no parameter {arg.keyword.value!r} (parameters: {', '.join(params) or 'none'})",
                )

    # -- try visibility ----------------------------------------------------

    def _inside(self, rid: str | None, ancestor: str) -> bool:
        parents = self._parents
        while rid is not None:
            if rid == ancestor:
                return True
            rid = parents.get(rid)
        return False

    def _try_visible(self) -> dict[str, tuple[str, ...]]:
        """For each try body: names assigned in it that code outside it may read.

        Inside a loop every read in the loop counts: the next iteration, or
        the handler, sees what the body assigned.
        """
        out: dict[str, tuple[str, ...]] = {}
        kinds = {r.id: r for r in self.regions}
        self._parents = {r.id: r.parent for r in self.regions}
        for region in self.regions:
            if region.kind not in ("try", "with"):
                continue  # a with body is a try body: __exit__ may swallow the error
            loop = region.parent
            while loop is not None and kinds[loop].kind not in ("for", "while"):
                loop = kinds[loop].parent
            outside = {
                name
                for name, rid in self.read_sites
                if not self._inside(rid, region.id) or (loop is not None and self._inside(rid, loop))
            }
            out[region.id] = tuple(sorted(self.writes_by_region.get(region.id, set()) & outside))
        return out

    def _regions_with_visibility(self) -> list[ControlRegion]:
        visible = self._try_visible()
        return [r.with_changes(visible=visible.get(r.id, ())) for r in self.regions]


#: Methods that change the container they are called on.
_CONTAINER_MUTATORS = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault add discard popitem".split()
)


def _is_super_call(expr: cst.BaseExpression, fl: FunctionLowerer) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "super"
        and fl.scope_of("super") == "builtin"
    )


def _root_name(expr: cst.BaseExpression) -> str | None:
    """``a`` for ``a``, ``a.b.c``, ``a[0].b``."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


#: Consumers that exhaust a generator argument: it may become a list (in parallel).
_EAGER_CONSUMERS = frozenset(
    f"builtins.{n}" for n in "sum min max sorted list tuple set frozenset dict".split()
)


def _consumes_generator(node: cst.Call, res: _Resolution) -> bool:
    if len(node.args) != 1 or not isinstance(node.args[0].value, cst.GeneratorExp) or node.args[0].keyword:
        return False
    is_join = isinstance(node.func, cst.Attribute) and node.func.attr.value == "join"
    return res.target in _EAGER_CONSUMERS or is_join


def _has_store_elements(target: cst.BaseExpression) -> bool:
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_has_store_elements(e.value) for e in target.elements)
    if isinstance(target, cst.StarredElement):
        return _has_store_elements(target.value)
    return isinstance(target, (cst.Attribute, cst.Subscript))


def _bound_name_of(alias: cst.ImportAlias) -> str:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return (cst.helpers.get_full_name_for_node(alias.name) or "").partition(".")[0]


def _is_range(expr: cst.BaseExpression, fl: FunctionLowerer) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "range"
        and fl.scope_of("range") == "builtin"
    )
