"""Async lowering: decide which functions become ``async def``.

Reads: each function's component calls, intrinsic and dynamic calls, its
static callees, and whether Python calls it implicitly (dunders, properties),
it is a generator, or a decorator nalarc does not know wraps it.
Writes: :attr:`FunctionIR.is_async`, :attr:`FunctionIR.in_scope`,
:attr:`FunctionIR.is_region`; errors for component calls Python would make
implicitly; fallback warnings for generators.

A function is *in scope* when a workflow, or an agent method or tool that is
itself asynchronous, reaches it through static calls.  It becomes asynchronous when it calls a component
or an intrinsic, calls an asynchronous function, or (in scope, outside
component bodies) makes a call only known at run time, which may turn out to
be a component.  The fixpoint runs over the call graph with networkx.

Example::

    def helper(q):  return search(q)        helper: async (calls a tool)
    @workflow
    def wf(q):      return helper(q) + "!"  wf: async (calls helper)
    def fmt(s):     return s.upper()        fmt: sync (not in scope)
"""

from __future__ import annotations

import networkx as nx

from ..ir import FunctionIR, Program
from ._context import PassContext


def call_graph(program: Program) -> nx.DiGraph[str]:
    """Caller -> callee edges between the app's functions."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    functions = program.functions()
    for fn in functions.values():
        graph.add_node(fn.qualname)
        for callee in fn.callees:
            if callee in functions:
                graph.add_edge(fn.qualname, callee)
    return graph


def _scope(graph: nx.DiGraph[str], roots: set[str]) -> set[str]:
    scope: set[str] = set()
    for root in roots:
        scope |= {root} | nx.descendants(graph, root)
    return scope


def run(program: Program, ctx: PassContext) -> Program:
    functions = program.functions()
    graph = call_graph(program)
    workflows = {q for q, f in functions.items() if f.kind == "workflow"}
    # Two sets grow together: functions that become async, and functions that
    # want to but cannot (generators, dunders): blocking regions.  Calling
    # either makes a function want to be async.
    # Only code that runs in a frame (workflows, and components that became
    # async) dispatches unknown calls at run time; plain tool bodies stay plain.
    colored: set[str] = set()
    regions: set[str] = set()
    changed = True
    while changed:
        changed = False
        scope = _scope(graph, workflows | {q for q in colored if functions[q].kind != "helper"})
        for q, fn in functions.items():
            if q in colored or q in regions:
                continue
            wants = _needs_async(fn, q in scope) or any(c in colored or c in regions for c in graph.successors(q))
            if wants:
                (colored if _can_be_async(fn) else regions).add(q)
                changed = True
    out: dict[str, FunctionIR] = {}
    for q, fn in functions.items():
        region = q in regions
        if region:
            _report_region(fn, program, ctx)
        out[q] = fn.with_changes(is_async=q in colored, in_scope=q in scope, is_region=region)
    return program.replace_functions(out)


def _can_be_async(fn: FunctionIR) -> bool:
    # A decorator nalarc does not know (functools.wraps wrappers, lru_cache,
    # retry loops) would get a coroutine instead of a result.
    return not fn.implicit and not fn.is_generator and not fn.opaque_decorators


def _needs_async(fn: FunctionIR, in_scope: bool) -> bool:
    if fn.futures or fn.has_intrinsics:
        return True
    return in_scope and fn.has_dynamic_calls and fn.kind in ("workflow", "helper", "nested")


def _report_region(fn: FunctionIR, program: Program, ctx: PassContext) -> None:
    path = _path_of(fn, program)
    name = fn.qualname.partition(":")[2]
    if fn.implicit and fn.futures:
        ctx.warn(
            path,
            fn.span,
            f"{name} calls a component, but Python calls it implicitly (dunder or property): "
            "its calls run inline, blocking (sequential here; move them into a regular method)",
        )
    elif fn.is_generator:
        ctx.warn(path, fn.span, f"generator {name} calls components: it runs in a worker thread, "
                 "waiting for each value (sequential here)")
    elif fn.opaque_decorators:
        decorators = ", ".join(f"@{d}" for d in fn.opaque_decorators)
        ctx.warn(path, fn.span, f"{name} is decorated with {decorators}, which nalarc cannot see into: "
                 "it stays synchronous and runs in a worker thread, waiting where it needs a value")


def _path_of(fn: FunctionIR, program: Program) -> str:
    module = fn.qualname.partition(":")[0]
    for mod in program.modules:
        if mod.name == module:
            return mod.path
    return module
