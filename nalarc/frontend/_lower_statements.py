"""Lowering: statements (assignments, control flow, straight-line statements for hoisting)."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from ..ir import Binding, Span, StatementInfo
from ._lower_base import DEEP, PASS, SHALLOW, LowererBase
from ._lower_expressions import ExpressionLowering
from ._modules import target_names
from ._scopes import walk_all


class StatementLowering(ExpressionLowering):
    """Lowers statements."""

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


def _is_range(expr: cst.BaseExpression, fl: LowererBase) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "range"
        and fl.scope_of("range") == "builtin"
    )
