"""Code generation: expressions (blocking forms, materialization, calls)."""

from __future__ import annotations

from typing import Union

import libcst as cst

from ..ir import STAGE_SHIFT, CallNode, FutureNode
from ._emit_base import EmitterBase
from ._emit_helpers import (
    _INTRINSIC_FUNCS,
    Expr,
    _aiter,
    _is_async_genexp,
    _is_constant,
    _iterate_eager_args,
    _may_stop_iteration,
    _unpacks,
    awaited,
    pack_args,
    rt,
    rt_call,
)


class ExpressionEmitter(EmitterBase):
    """Rewrites expressions: component calls, other calls, materializations, blocking forms."""

    # -- lambdas and generator expressions: blocking form ------------------------

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.sync_depth += 1
        self.region_exprs.append(False)

    def leave_Lambda(self, original: cst.Lambda, updated: cst.Lambda) -> Expr:
        self.sync_depth -= 1
        is_region = self.region_exprs.pop()
        if is_region and self.scope.mode != "plain":
            return rt_call("region", updated)
        return updated

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        if self.pos(node) in self.eager_genexps and self.mode == "async":
            return
        if self.mode == "async" and _is_async_genexp(node):
            self.async_genexps.add(id(node))  # awaits inside: it stays asynchronous, never blocking
            return
        self.sync_depth += 1
        self.region_exprs.append(False)
        # The first iterable of a generator expression runs in the enclosing scope.
        self.islands[id(node.for_in.iter)] = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.islands:
            self.islands[id(node)] = self.sync_depth
            self.sync_depth = 0
        return super().on_visit(node)

    def on_leave(  # type: ignore[override]
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        result = super().on_leave(original_node, updated_node)
        if id(original_node) in self.islands:
            self.sync_depth = self.islands.pop(id(original_node))
        return result

    def leave_GeneratorExp(self, original: cst.GeneratorExp, updated: cst.GeneratorExp) -> Expr:
        if self.pos(original) in self.eager_genexps and self.mode == "async":
            return cst.ListComp(updated.elt, self._async_for(updated.for_in))
        if id(original) in self.async_genexps:
            self.async_genexps.discard(id(original))
            return rt_call("native_agen", updated.with_changes(for_in=self._async_for(updated.for_in)))
        self.sync_depth -= 1
        is_region = self.region_exprs.pop()
        if is_region and self.scope.mode != "plain":
            return rt_call("region_iter", updated)
        return updated

    def _async_for(self, comp: cst.CompFor) -> cst.CompFor:
        inner = self._async_for(comp.inner_for_in) if comp.inner_for_in else None
        return comp.with_changes(
            asynchronous=cst.Asynchronous(),
            iter=_aiter(comp.iter, comp.target, comp.asynchronous is not None),
            inner_for_in=inner,
        )

    def leave_CompFor(self, original: cst.CompFor, updated: cst.CompFor) -> cst.CompFor:
        # In blocking form the elements a target unpacks may be futures: wait for each.
        if self.mode == "sync" and _unpacks(original.target) and original.asynchronous is None:
            return updated.with_changes(iter=rt_call("biter_unpack", updated.iter))
        return updated

    def leave_ListComp(self, original: cst.ListComp, updated: cst.ListComp) -> Expr:
        return self._comp(original, updated)

    def leave_SetComp(self, original: cst.SetComp, updated: cst.SetComp) -> Expr:
        return self._comp(original, updated)

    def leave_DictComp(self, original: cst.DictComp, updated: cst.DictComp) -> Expr:
        return self._comp(original, updated)

    def _comp(self, original: cst.BaseComp, updated: Union[cst.ListComp, cst.SetComp, cst.DictComp]) -> Expr:
        if self.mode == "async":
            updated = updated.with_changes(for_in=self._async_for(updated.for_in))
        return self.materialize(original, updated)

    # -- materialization ---------------------------------------------------

    def materialize(self, original: cst.CSTNode, updated: Expr) -> Expr:
        mat = self.mats.get(self.pos(original))
        if mat is None or self.mode == "plain":
            return updated
        name = "md" if mat.deep else "m"
        if mat.deep and mat.reason in ("yield", "unpack"):
            name = "md_lazy"  # compiled code gets the elements: async calls stay coroutines
        if self.mode == "sync":
            self.mark_region_use()
            return rt_call("b" + name, updated)
        return awaited(rt_call(name, updated))

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> Expr:
        return self.materialize(original, updated)

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> Expr:
        return self.materialize(original, updated)

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> Expr:
        return self.materialize(original, updated)

    def leave_BooleanOperation(self, original: cst.BooleanOperation, updated: cst.BooleanOperation) -> Expr:
        return self.materialize(original, updated)

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> Expr:
        return self.materialize(original, updated)

    def leave_NamedExpr(self, original: cst.NamedExpr, updated: cst.NamedExpr) -> Expr:
        return self.materialize(original, updated)

    def leave_List(self, original: cst.List, updated: cst.List) -> Expr:
        return self.materialize(original, updated)

    def leave_Tuple(self, original: cst.Tuple, updated: cst.Tuple) -> Expr:
        return self.materialize(original, updated)

    def leave_Dict(self, original: cst.Dict, updated: cst.Dict) -> Expr:
        return self.materialize(original, updated)

    def leave_Await(self, original: cst.Await, updated: cst.Await) -> Expr:
        """``await x`` -> ``await _nalarc_rt.aw(x)``: futures, compiled coroutines, foreign awaitables."""
        if self.mode != "async":
            return updated
        return self.materialize(original, updated.with_changes(expression=rt_call("aw", updated.expression)))

    # -- calls -------------------------------------------------------------

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> Expr:
        mode = self.mode
        if mode == "plain" and len(self.scopes) == 1 and self._may_be_compiled(updated.func):
            # Module-level code (it runs at import, with no event loop) calling what
            # the compiler made async: run it to its value, as Python would.
            args, kwargs = pack_args(updated.args)
            return rt_call("run_sync", updated.func, args, kwargs)
        if mode == "plain":
            return updated
        span = self.pos(original)
        future = self.futures.get(span)
        if future is not None:
            result: Expr = self._component_call(future, _iterate_eager_args(original, updated), mode)
        else:
            call = self.calls.get(span)
            result = self._other_call(call, updated, mode)
        return self.materialize(original, result)

    def _component_call(self, future: FutureNode, updated: cst.Call, mode: str) -> Expr:
        method: cst.BaseExpression
        if future.method is None:
            target, method = updated.func, cst.Name("None")
        else:
            assert isinstance(updated.func, cst.Attribute)
            target, method = updated.func.value, cst.SimpleString(repr(future.method))
        args, kwargs = pack_args(updated.args)
        if mode == "sync":
            self.mark_region_use()
        flags = future.flags | (future.stage << STAGE_SHIFT)
        return rt_call("bcall" if mode == "sync" else "call", target, method, cst.Integer(str(flags)), args, kwargs)

    def _other_call(self, call: CallNode | None, updated: cst.Call, mode: str) -> Expr:
        kind = call.kind if call is not None else "dynamic"
        if kind == "agent_handle":
            return rt_call("handle", updated.func)
        if kind == "opaque" and call is not None and (call.target or "").rpartition(".")[2] in (
            "super", "locals", "globals", "vars", "dir", "eval", "exec"
        ):
            return updated
        if kind == "compiled" and call is not None and self._makes_coroutine(call):
            return updated  # a coroutine (in any mode), awaited where the program awaits it
        args, kwargs = pack_args(updated.args)
        if mode == "sync":
            # bdyn waits for futures in the arguments: only constants cannot be one.
            if kind in ("compiled", "dynamic", "intrinsic") or not all(_is_constant(a.value) for a in updated.args):
                self.mark_region_use()
            return rt_call("bdyn", updated.func, args, kwargs)
        if kind == "compiled" and call is not None:
            target = self.all_functions.get(call.target or "")
            if target is not None and target.is_async:
                return awaited(updated)
            return awaited(rt_call("local", updated.func, args, kwargs))
        if kind == "intrinsic" and call is not None:
            name = _INTRINSIC_FUNCS[call.target or ""]
            return awaited(cst.Call(rt(name), updated.args))
        if _may_stop_iteration(call, updated):
            return rt_call("v", awaited(rt_call("dyn_next", updated.func, args, kwargs)))
        helper = "dyn_effect" if call is not None and call.target == "global" else "dyn"
        return awaited(rt_call(helper, updated.func, args, kwargs))

    def _makes_coroutine(self, call: CallNode) -> bool:
        """A call of a compiled function written ``async def``: it only makes a coroutine."""
        target = self.all_functions.get(call.target or "")
        return target is not None and target.is_async and target.written_async

    def _may_be_compiled(self, func: cst.BaseExpression) -> bool:
        return isinstance(func, cst.Name) and func.value in self.async_names
