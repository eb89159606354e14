"""Code generation: rewrite each local module as the IR says.

The generator is a LibCST transformer over the *original* tree.  It finds the
syntax each IR node stands for by source span and rewrites it:

==========================  ===============================================
IR                          generated Python
==========================  ===============================================
FutureNode                  ``_nalarc_rt.call(tool, None, flags, (a,), {})``
MaterializeNode (shallow)   ``(await _nalarc_rt.m(x))``
MaterializeNode (deep)      ``(await _nalarc_rt.md(x))``
CallNode compiled (async)   ``(await helper(x))``
CallNode dynamic / opaque   ``(await _nalarc_rt.dyn(f, (x,), {}))``
FunctionIR.is_async         ``async def`` + ``@_nalarc_rt.compiled`` (``compiled_async``
                            if written async); ``for`` -> ``async for``
``await x`` (written async)  ``await _nalarc_rt.aw(x)``; ``async for`` / ``async with``
                            through ``aiter_async`` / ``acm_enter`` / ``acm_exit``
ControlRegion try / with    settle on entry, settle and reconcile at body end
Hoist                       launch statement moved up in its block
==========================  ===============================================

Inside synchronous code that may block (lambdas, generator expressions,
regions) the same rewrites use the blocking forms ``bm``, ``bmd``, ``bcall``
and ``bdyn``, which only ever run in worker threads.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ..frontend._modules import target_names
from ..ir import STAGE_SHIFT, CallNode, ControlRegion, FunctionIR, FutureNode, MaterializeNode, ModuleIR, Program, Span

RT = "_nalarc_rt"
_IMPORT = f"from nalarc import runtime as {RT}"
_INTRINSIC_FUNCS = {"value": "value", "available": "available", "as_completed": "as_completed", "current_session": "session_id"}

Expr = cst.BaseExpression


def rt(name: str) -> cst.Attribute:
    return cst.Attribute(cst.Name(RT), cst.Name(name))


def _paren(node: Expr) -> Expr:
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def awaited(call: cst.Call) -> Expr:
    return _paren(cst.Await(call))


def rt_call(name: str, *args: Expr) -> cst.Call:
    return cst.Call(rt(name), [cst.Arg(_arg_safe(a)) for a in args])


def _arg_safe(node: Expr) -> Expr:
    if isinstance(node, (cst.Tuple, cst.GeneratorExp)) and not node.lpar:
        return _paren(node)
    return node


_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def pack_args(args: Sequence[cst.Arg]) -> tuple[cst.Tuple, cst.Dict]:
    """Split call arguments into a ``(positional,)`` tuple and a ``{keyword: ...}`` dict."""
    pos: list[cst.BaseElement] = []
    kw: list[cst.BaseDictElement] = []
    for arg in args:
        # f(x for x in xs) needs no parentheses of its own; an element of a tuple does.
        value = _arg_safe(arg.value)
        if arg.keyword is not None:
            kw.append(cst.DictElement(cst.SimpleString(repr(arg.keyword.value)), value, comma=_COMMA))
        elif arg.star == "**":
            kw.append(cst.StarredDictElement(value, comma=_COMMA))
        elif arg.star == "*":
            pos.append(cst.StarredElement(value, comma=_COMMA))
        else:
            pos.append(cst.Element(value, comma=_COMMA))
    if pos:
        last = pos[-1]
        pos[-1] = last.with_changes(comma=cst.Comma())
    if kw:
        kw[-1] = kw[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    tup = cst.Tuple(pos, lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return tup, cst.Dict(kw)


def _aiter(iterable: Expr, target: cst.BaseExpression, written_async: bool = False) -> cst.Call:
    """``aiter(it)``; ``aiter_unpack(it)`` when the target unpacks each element;
    ``aiter_async(it)`` for an ``async for`` the program itself wrote."""
    if written_async:
        return rt_call("aiter_async", iterable)
    unpacks = isinstance(target, (cst.Tuple, cst.List))
    return rt_call("aiter_unpack" if unpacks else "aiter", iterable)


def _is_async_genexp(node: cst.GeneratorExp) -> bool:
    """An asynchronous generator expression (``await`` or ``async for`` beyond its first iterable)."""
    comp: cst.CompFor | None = node.for_in
    while comp is not None:
        if comp.asynchronous is not None:
            return True
        comp = comp.inner_for_in
    first = node.for_in.iter
    finder = _AwaitFinder(first)
    node.visit(finder)
    return finder.found


class _AwaitFinder(cst.CSTVisitor):
    def __init__(self, skip: cst.CSTNode) -> None:
        super().__init__()
        self.skip, self.found = skip, False

    def visit_Await(self, node: cst.Await) -> bool:
        self.found = True
        return False

    def on_visit(self, node: cst.CSTNode) -> bool:
        return node is not self.skip and not self.found and super().on_visit(node)


def _iterate_eager_args(original: cst.Call, updated: cst.Call) -> cst.Call:
    """A generator expression given to a component became a list: pass an iterator over it."""
    args = [
        new.with_changes(value=awaited(rt_call("iterate", new.value)))
        if isinstance(old.value, cst.GeneratorExp) and isinstance(new.value, cst.ListComp) else new
        for old, new in zip(original.args, updated.args)
    ]
    return updated.with_changes(args=args)


def _is_constant(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString))


def _unpacks(target: cst.BaseExpression) -> bool:
    return isinstance(target, (cst.Tuple, cst.List))


def _settle_line() -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(awaited(rt_call("settle")))])


@functools.lru_cache(maxsize=512)
def _stmt(code: str) -> cst.BaseStatement:
    """A statement node from source (immutable, so shared freely)."""
    return cst.parse_statement(code)


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


class Emitter(cst.CSTTransformer):
    """Rewrites one module; see the module docstring for the mapping."""

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

    # -- functions -------------------------------------------------------------

    def visit_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        # Decorators, defaults and annotations run in the enclosing scope: the
        # function's own scope starts at its body.
        fn = self.functions.get(self.pos(node))
        if fn is None:
            self.scopes.append(_Scope(None, "plain"))
        elif fn.is_async:
            self.scopes.append(_Scope(fn, "async"))
        elif fn.is_region:
            self.scopes.append(_Scope(fn, "sync"))
        else:
            self.scopes.append(_Scope(fn, "plain"))
        self._saved_sync.append(self.sync_depth)
        self.sync_depth = 0

    def leave_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.scopes.pop()
        self.sync_depth = self._saved_sync.pop()

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        fn = self.functions.get(self.pos(original))
        if fn is None:
            return updated
        if fn.is_async:
            return _compiled_async_def(fn, updated)
        if fn.is_region:
            wrapper = "region_gen" if fn.is_generator else "region"
            return updated.with_changes(decorators=[*updated.decorators, cst.Decorator(rt(wrapper))])
        return updated

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

    # -- module ----------------------------------------------------------------

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.program.components() and not any(f.is_async or f.is_region for f in self.module.functions):
            # Nothing can ever be a future and nothing was compiled: the module
            # stays exactly as written (and does not even import the runtime).
            return updated
        body: list[cst.BaseStatement] = list(updated.body)
        index = 0
        while index < len(body) and _is_docstring_or_future(body[index]):
            index += 1
        extra: list[cst.BaseStatement] = [_stmt(_IMPORT)]
        body[index:index] = extra
        body += self._agent_annotations()
        body += self._pure_marks()
        return updated.with_changes(body=body)

    def _agent_annotations(self) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for comp in self.module.components:
            name = comp.key.partition(":")[2]
            if comp.kind == "agent" and comp.managed:
                writes = ", ".join(repr(w) for w in comp.writes)
                out.append(_stmt(f"{name}.__nalarc_writes__ = frozenset({{{writes}}})"))
            # Synchronous code that blocks on futures needs a frame where it runs.
            blocking = sorted(
                method for method, qualname in comp.implementations
                if (fn := self.all_functions.get(qualname)) is not None and fn.is_region
            )
            if comp.kind == "tool" and blocking:
                out.append(_stmt(f"{RT}.region({name})"))
            elif blocking:
                methods = ", ".join(repr(m) for m in blocking)
                out.append(_stmt(f"{name}.__nalarc_regions__ = frozenset({{{methods}}})"))
        return out

    def _pure_marks(self) -> list[cst.BaseStatement]:
        # One mark per module-level name, and only if every definition it may
        # hold (``f``, ``f#2``...) is pure.
        verdict: dict[str, bool] = {}
        for fn in self.module.functions:
            local = fn.qualname.partition(":")[2]
            name = local.partition("#")[0]
            if "." in name:
                continue
            pure = fn.pure and not fn.is_async and fn.kind == "helper"
            verdict[name] = verdict.get(name, True) and pure
        return [_stmt(f"{RT}.mark_pure({name})") for name, pure in verdict.items() if pure]


#: Methods that raise StopIteration by design.
_STOPPING_METHODS = frozenset({"__next__", "send", "throw"})


def _may_stop_iteration(call: CallNode | None, updated: cst.Call) -> bool:
    """``next(it)``, ``it.send(x)``: may raise StopIteration, which no coroutine can pass on."""
    if call is not None and call.target == "builtins.next":
        return True
    return isinstance(updated.func, cst.Attribute) and updated.func.attr.value in _STOPPING_METHODS


def _statements(suite: cst.BaseSuite) -> list[cst.BaseStatement]:
    """The statements of a block, whether indented or on the header's line."""
    if isinstance(suite, cst.IndentedBlock):
        return list(suite.body)
    assert isinstance(suite, cst.SimpleStatementSuite)
    return [cst.SimpleStatementLine(list(suite.body))]


def _explicit_with(item: cst.WithItem, body: cst.BaseSuite, tag: str, is_async: bool = False) -> list[cst.BaseStatement]:
    """PEP 343 spelled out, so ``__enter__`` / ``__exit__`` can run where they must.

    ``async with`` (PEP 492) is spelled out the same way: ``__aenter__`` / ``__aexit__``
    are awaited through the runtime (``acm_enter`` / ``acm_exit``), like any ``await``.
    """
    cm, ok, exc = f"_nalarc_cm_{tag}", f"_nalarc_ok_{tag}", f"_nalarc_exc_{tag}"
    enter_fn, exit_fn = ("acm_enter", "acm_exit") if is_async else ("cm_enter", "cm_exit")
    enter = awaited(rt_call(enter_fn, cst.Name(cm)))
    bind: cst.BaseSmallStatement = (
        cst.Assign([cst.AssignTarget(item.asname.name)], enter) if item.asname is not None else cst.Expr(enter)
    )
    handler = cst.ExceptHandler(
        body=cst.IndentedBlock([
            _stmt(f"{ok} = False"),
            _stmt(f"if not await {RT}.{exit_fn}({cm}, {exc}):\n    raise\n"),
        ]),
        type=cst.Name("BaseException"),
        name=cst.AsName(cst.Name(exc)),
    )
    guarded = cst.Try(
        body=cst.IndentedBlock(_statements(body)),
        handlers=[handler],
        finalbody=cst.Finally(cst.IndentedBlock([_stmt(f"if {ok}:\n    await {RT}.{exit_fn}({cm}, None)\n")])),
    )
    return [
        cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(cm))], item.item)]),
        cst.SimpleStatementLine([bind]),
        _stmt(f"{ok} = True"),
        guarded,
    ]


def _compiled_async_def(fn: FunctionIR, updated: cst.FunctionDef) -> cst.FunctionDef:
    """``async def`` marked as compiled (innermost decorator), so the runtime never mistakes it
    for user asyncio code: ``compiled_async`` if the program wrote it async (calling it makes a
    coroutine), ``compiled`` if it was synchronous (its callers await it at once)."""
    marker = cst.Decorator(rt("compiled_async" if fn.written_async else "compiled"))
    return updated.with_changes(asynchronous=cst.Asynchronous(), decorators=[*updated.decorators, marker])


def _is_docstring_or_future(stmt: cst.BaseStatement) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
        return True
    return isinstance(small, cst.ImportFrom) and isinstance(small.module, cst.Name) and small.module.value == "__future__"


def emit_module(wrapper: MetadataWrapper, module: ModuleIR, program: Program, source: str) -> str:
    """The generated source of one module: ``source`` itself when nothing in it is rewritten
    (LibCST's round trip is not always exact: ``except X :`` loses its space, LibCST #1457)."""
    emitted = wrapper.visit(Emitter(module, program))
    if emitted.deep_equals(wrapper.module):
        return source
    return emitted.code
