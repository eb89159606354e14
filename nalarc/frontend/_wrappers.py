"""The app's own decorators that nalarc sees into: wrappers in the ``functools.wraps`` style.

A decorator the app defines as ::

    def traced(fn):                          # or a factory: def traced(tag):
        @functools.wraps(fn)                 #                   def decorate(fn): ...
        def wrapper(*args, **kwargs):        #                   return decorate
            log(fn.__name__)
            return fn(*args, **kwargs)
        return wrapper

hands back its nested ``wrapper``, which only *calls* ``fn`` (and reads its
attributes).  Compiled ``async`` together with every function it decorates,
the wrapper awaits the function where it calls it, so the decorated function
need not fall back to synchronous code in a worker thread.  A decorator that
does anything else with ``fn`` (stores it, passes it to other code, returns
something else) could have ``fn`` called where a coroutine is not expected:
it stays opaque, as a decorator of a library does.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ._scopes import walk_all, walk_scope

#: Decorators and calls that only copy ``fn``'s metadata onto the wrapper.
METADATA_COPIERS = frozenset({"functools.wraps", "functools.update_wrapper"})

#: ``expr`` -> its dotted target (``functools.wraps``), or None.
Resolve = Callable[[cst.BaseExpression], str | None]


def wrapper_chain(
    decorator: cst.BaseExpression, definition: Callable[[cst.BaseExpression], cst.FunctionDef | None], resolve: Resolve
) -> list[cst.FunctionDef] | None:
    """The definitions from the app's decorator down to the wrapper it returns
    (``[traced, wrapper]``, ``[traced, decorate, wrapper]`` for a factory), or None
    when nalarc cannot see into ``decorator``."""
    factory = isinstance(decorator, cst.Call)
    outer = definition(decorator.func if isinstance(decorator, cst.Call) else decorator)
    if outer is None or outer.asynchronous is not None or outer.decorators:
        return None
    chain = [outer]
    if factory:
        decorate = returned_function(outer)
        if decorate is None:
            return None
        chain.append(decorate)
    wrapped = _single_param(chain[-1])
    wrapper = returned_function(chain[-1])
    if wrapped is None or wrapper is None or not _only_calls(chain[-1], wrapped, resolve):
        return None
    if not all(_copies_metadata(d.decorator, resolve) for d in wrapper.decorators):
        return None
    return [*chain, wrapper]


def returned_function(outer: cst.FunctionDef) -> cst.FunctionDef | None:
    """The function defined in ``outer``'s body that ``outer`` returns at its end, and
    only there; None if ``outer`` is anything else."""
    body = list(outer.body.body) if isinstance(outer.body, cst.IndentedBlock) else []
    last = body[-1] if body else None
    if not isinstance(last, cst.SimpleStatementLine) or len(last.body) != 1:
        return None
    ret = last.body[0]
    if not isinstance(ret, cst.Return) or not isinstance(ret.value, cst.Name):
        return None
    name = ret.value.value
    defs = [s for s in body if isinstance(s, cst.FunctionDef) and s.name.value == name]
    if len(defs) != 1 or defs[0].asynchronous is not None:
        return None  # written async: a coroutine function in plain Python too, nothing to see into
    scope = walk_scope(outer.body)
    returns = [n for n in scope if isinstance(n, cst.Return)]
    uses = [n for n in scope if isinstance(n, cst.Name) and n.value == name]
    # Any other return, or any other use of the wrapper (a call, a store), could see it as a
    # coroutine function.
    if returns != [ret] or len(uses) != 1:
        return None
    return defs[0]


def _single_param(decorate: cst.FunctionDef) -> str | None:
    params = decorate.params
    positional = [*params.posonly_params, *params.params]
    if len(positional) != 1 or isinstance(params.star_arg, cst.Param) or params.kwonly_params or params.star_kwarg:
        return None
    return positional[0].name.value


def _only_calls(decorate: cst.FunctionDef, fn: str, resolve: Resolve) -> bool:
    """Every use of ``fn`` in ``decorate``'s body calls it, reads an attribute of it, or
    hands it to ``functools.wraps``."""
    allowed: set[int] = set()
    uses: list[cst.Name] = []
    for node in walk_all(decorate.body):
        if isinstance(node, cst.Name) and node.value == fn:
            uses.append(node)
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == fn:
            allowed.add(id(node.func))
        elif isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            allowed.add(id(node.value))
        elif isinstance(node, cst.Call) and resolve(node.func) in METADATA_COPIERS:
            allowed |= {id(a.value) for a in node.args}
    return all(id(use) in allowed for use in uses)


def _copies_metadata(decorator: cst.BaseExpression, resolve: Resolve) -> bool:
    return isinstance(decorator, cst.Call) and resolve(decorator.func) in METADATA_COPIERS
