"""Code generation: statements (loops, ``try`` / ``with`` bodies, settling, hoisting)."""

from __future__ import annotations

import libcst as cst

from ..frontend._modules import target_names
from ._emit_base import EmitterBase
from ._emit_helpers import (
    RT,
    _aiter,
    _explicit_with,
    _settle_line,
    _statements,
    _stmt,
    _unpacks,
    awaited,
    rt_call,
)


class StatementEmitter(EmitterBase):
    """Rewrites statements: loops, guarded ``try`` / ``with`` bodies, settle points, hoists."""

    # -- statements ----------------------------------------------------------

    def visit_For(self, node: cst.For) -> None:
        self.scope.loop_depth += 1

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        self.scope.loop_depth -= 1
        if self.scope.mode == "sync" and _unpacks(original.target) and original.asynchronous is None:
            return updated.with_changes(iter=rt_call("biter_unpack", updated.iter))
        if self.scope.mode != "async":
            return updated
        written = original.asynchronous is not None
        return updated.with_changes(asynchronous=cst.Asynchronous(), iter=_aiter(updated.iter, original.target, written))

    def visit_While(self, node: cst.While) -> None:
        self.scope.loop_depth += 1

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        self.scope.loop_depth -= 1
        return updated

    def visit_Try(self, node: cst.Try) -> None:
        region = self.tries.get(self.pos(node))
        if region is not None and self.scope.mode == "async":
            self.try_body_ids[id(node.body)] = region

    def visit_TryStar(self, node: cst.TryStar) -> None:
        region = self.tries.get(self.pos(node))
        if region is not None and self.scope.mode == "async":
            self.try_body_ids[id(node.body)] = region

    def visit_With(self, node: cst.With) -> None:
        region = self.tries.get(self.pos(node))
        if region is not None and self.scope.mode == "async":
            self.try_body_ids[id(node.body)] = region

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        region = self.try_body_ids.get(id(node))
        if region is not None:
            self.scope.try_bodies.append((region, self.scope.loop_depth))

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if id(original) in self.try_body_ids and self.scope.try_bodies:
            self.scope.try_bodies.pop()
        return self._apply_hoists(original, updated)

    def _guarded_body(self, body: cst.BaseSuite) -> cst.IndentedBlock:
        """``push_try; try: body; settle / except: reconcile / finally: exit_try``."""
        inner = _statements(body)
        guarded = cst.Try(
            body=cst.IndentedBlock([*inner, _settle_line()]),
            handlers=[
                cst.ExceptHandler(
                    body=cst.IndentedBlock([_stmt(f"raise await {RT}.reconcile(_nalarc_error)")]),
                    type=cst.Name("BaseException"),
                    name=cst.AsName(cst.Name("_nalarc_error")),
                )
            ],
            finalbody=cst.Finally(cst.IndentedBlock([_stmt(f"{RT}.exit_try()")])),
        )
        return cst.IndentedBlock([_stmt(f"{RT}.push_try()"), guarded])

    def leave_Try(self, original: cst.Try, updated: cst.Try) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        return self._guarded_try(original, updated)

    def leave_TryStar(
        self, original: cst.TryStar, updated: cst.TryStar
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        return self._guarded_try(original, updated)

    def _guarded_try(
        self, original: cst.Try | cst.TryStar, updated: cst.Try | cst.TryStar
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        if id(original.body) not in self.try_body_ids:
            return updated
        new = updated.with_changes(body=self._guarded_body(updated.body))
        return self._expanded(original, [_settle_line(), new])

    def leave_With(self, original: cst.With, updated: cst.With) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        if id(original.body) not in self.try_body_ids:
            return updated
        line, col = self.pos(original)[:2]
        body: cst.BaseSuite = self._guarded_body(updated.body)
        statements: list[cst.BaseStatement] = []
        is_async = original.asynchronous is not None
        for index, item in reversed(list(enumerate(updated.items))):
            statements = _explicit_with(item, body, f"{line}_{col}_{index}", is_async)
            body = cst.IndentedBlock(statements)
        return self._expanded(original, [_settle_line(), *statements])

    def _in_try_body(self) -> bool:
        return bool(self.scope.try_bodies)

    def _exits_try_body(self, loop_statement: bool) -> bool:
        if not self.scope.try_bodies:
            return False
        if not loop_statement:
            return True
        # break/continue leave the body only if their loop encloses the try.
        return self.scope.try_bodies[-1][1] >= self.scope.loop_depth

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if self.scope.mode == "async" and self._in_try_body():
            self.scope.needs_settle = True
            if updated.value is not None:
                return updated.with_changes(value=awaited(rt_call("settled", updated.value)))
        return updated

    def leave_Break(self, original: cst.Break, updated: cst.Break) -> cst.Break:
        if self.scope.mode == "async" and self._exits_try_body(True):
            self.scope.needs_settle = True
        return updated

    def leave_Continue(self, original: cst.Continue, updated: cst.Continue) -> cst.Continue:
        if self.scope.mode == "async" and self._exits_try_body(True):
            self.scope.needs_settle = True
        return updated

    def leave_Raise(self, original: cst.Raise, updated: cst.Raise) -> cst.Raise:
        if self.scope.mode == "async":
            self.scope.needs_settle = True
        return updated

    def leave_Assert(self, original: cst.Assert, updated: cst.Assert) -> cst.Assert:
        if self.scope.mode == "async":
            self.scope.needs_settle = True
        return updated

    def leave_Del(self, original: cst.Del, updated: cst.Del) -> cst.Del:
        if self.scope.mode == "async":
            self.scope.needs_settle = True
        return updated

    def leave_AugAssign(self, original: cst.AugAssign, updated: cst.AugAssign) -> cst.AugAssign:
        if self.scope.mode != "async":
            return updated
        fn = self.scope.fn
        outer = fn.outer_writes if fn else ()
        names = set(target_names(original.target))
        if not isinstance(original.target, cst.Name) or names & set(outer) or self._visible(names):
            self.scope.needs_settle = True
        if isinstance(original.target, cst.Name) and fn and original.target.value in fn.maybe_pending:
            name = original.target.value
            self.scope.prefix.append(_stmt(f"{name} = await {RT}.md({name})"))
        return updated

    def _request_owned(self, target: cst.BaseExpression) -> bool:
        """Is the stored-into container a local of this function (not a global)?"""
        base = target.value if isinstance(target, (cst.Subscript, cst.Attribute)) else target
        fn = self.scope.fn
        if not isinstance(base, cst.Name) or fn is None:
            return False
        return base.value in {b.name for b in fn.bindings} and base.value not in fn.outer_writes

    def _visible(self, names: set[str]) -> bool:
        return any(names & set(region.visible) for region, _ in self.scope.try_bodies)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.BaseSmallStatement:
        if self.scope.mode != "async":
            return updated
        outer = set(self.scope.fn.outer_writes if self.scope.fn else ())
        if len(updated.targets) == 1:
            target = updated.targets[0].target
            if isinstance(target, cst.Attribute):
                return cst.Expr(awaited(rt_call("setattr_", target.value, cst.SimpleString(repr(target.attr.value)), updated.value)))
            if isinstance(target, cst.Subscript) and len(target.slice) == 1 and isinstance(target.slice[0].slice, cst.Index):
                key = target.slice[0].slice.value
                helper = "setitem" if self._request_owned(original.targets[0].target) else "setitem_effect"
                return cst.Expr(awaited(rt_call(helper, target.value, key, updated.value)))
        names: set[str] = set()
        for t in original.targets:
            names |= set(target_names(t.target))
        if names & outer or self._visible(names) or any(
            not isinstance(t.target, (cst.Name, cst.Tuple, cst.List)) for t in original.targets
        ):
            self.scope.needs_settle = True
            if self._visible(names) and not (names & outer):
                return updated.with_changes(value=awaited(rt_call("md", updated.value)))
        return updated

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        before: list[cst.BaseStatement] = []
        if self.scope.needs_settle:
            before.append(_settle_line())
        before += self.scope.prefix
        self.scope.needs_settle, self.scope.prefix = False, []
        if not before:
            return updated
        return self._expanded(original, [*before, updated])

    # -- hoisting ------------------------------------------------------------

    def _expanded(
        self, original: cst.BaseStatement, statements: list[cst.BaseStatement]
    ) -> cst.FlattenSentinel[cst.BaseStatement]:
        """One original statement became several: remember how many, for hoisting."""
        self.expansion[id(original)] = len(statements)
        return cst.FlattenSentinel(statements)

    def _apply_hoists(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if not self.hoists:
            return updated
        spans = [self.pos(s) for s in original.body]
        moves = [(i, spans.index(self.hoists[s])) for i, s in enumerate(spans) if s in self.hoists and self.hoists[s] in spans]
        if not moves:
            return updated
        # Group the generated statements by the original statement they came from.
        generated = list(updated.body)
        groups: list[list[cst.BaseStatement]] = []
        for stmt in original.body:
            count = self.expansion.get(id(stmt), 1)
            groups.append(generated[:count])
            generated = generated[count:]
        assert not generated, "generated statements do not match the original block"
        order = list(range(len(groups)))
        for src, dst in moves:
            order.remove(src)
            order.insert(order.index(dst), src)
        return updated.with_changes(body=[stmt for i in order for stmt in groups[i]])
