"""Code generation helpers: the runtime's names as syntax, and statement templates."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import libcst as cst

from ..ir import CallNode, FunctionIR

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
