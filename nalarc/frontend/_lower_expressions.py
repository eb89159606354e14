"""Lowering: expressions (where a value is needed, and how deeply)."""

from __future__ import annotations

import libcst as cst

from ..ir import Binding, MaterializeNode
from ._lower_base import DEEP, PASS, SHALLOW
from ._lower_calls import CallLowering
from ._modules import target_names
from ._scopes import param_names


class ExpressionLowering(CallLowering):
    """Lowers expressions."""

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


def _root_name(expr: cst.BaseExpression) -> str | None:
    """``a`` for ``a``, ``a.b.c``, ``a[0].b``."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None
