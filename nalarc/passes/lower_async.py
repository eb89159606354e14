"""Async lowering: decide which functions become ``async def``.

Reads: each function's component calls, intrinsic and dynamic calls, its
static callees, and whether Python calls it implicitly (dunders, properties),
it is a generator, or a decorator nalarc does not know wraps it.  A function
and the wrappers the app's own decorators put around it (``functools.wraps``
style, :attr:`FunctionIR.wrappers`) take one colour together.
Writes: :attr:`FunctionIR.is_async`, :attr:`FunctionIR.in_scope`,
:attr:`FunctionIR.is_region`; errors for component calls Python would make
implicitly; fallback warnings for generators.

A function is *in scope* when a workflow, or an agent method or tool that is
itself asynchronous, reaches it through static calls.  It becomes asynchronous when it calls a component
or an intrinsic, calls an asynchronous function, or (in scope, outside
component bodies) makes a call only known at run time, which may turn out to
be a component.  The fixpoint runs over the call graph with networkx.

Functions written ``async def`` (see :attr:`FunctionIR.written_async`) take
part in the same fixpoint: in scope (a workflow, a helper or nested function a
compiled function reaches) they are always compiled, since compiled callers
hand them futures and compiled coroutines; they never become blocking regions
(an async generator or an async dunder is compiled natively, not run in a
thread).  A written-async tool or agent method is compiled only if it calls a
component or a compiled function; otherwise it is a *leaf* async component,
left as written: user asyncio code the executor runs on its asyncio loop
thread.  A leaf may turn compiled in a later round of the fixpoint (it calls
a helper that became async), never the other way round.

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
    groups = _wrapper_groups(functions)
    wrappers = {w for fn in functions.values() for w in fn.wrappers}
    changed = True
    while changed:
        changed = False
        scope = _scope(graph, workflows | {q for q in colored if functions[q].kind != "helper"})
        for q, fn in functions.items():
            if q in colored or q in regions:
                continue
            # (The decorator that defines a wrapper only returns it: it takes no colour from it.)
            wants = _needs_async(fn, q in scope) or any(
                (c in colored or c in regions) and c not in wrappers for c in graph.successors(q)
            )
            if wants:
                group = groups.get(q, {q})
                if all(_can_be_async(functions[m]) for m in group):
                    colored |= group
                else:
                    regions.add(q)
                changed = True
    out: dict[str, FunctionIR] = {}
    for q, fn in functions.items():
        region = q in regions
        if region:
            _report_region(fn, program, ctx)
        out[q] = fn.with_changes(is_async=q in colored, in_scope=q in scope, is_region=region)
    return program.replace_functions(out)


def _wrapper_groups(functions: dict[str, FunctionIR]) -> dict[str, set[str]]:
    """Functions and the wrappers the app's decorators put around them, grouped: a wrapper
    is ``async def`` if and only if what it wraps is, so each group takes one colour."""
    graph: nx.Graph[str] = nx.Graph()
    for q, fn in functions.items():
        for wrapper in fn.wrappers:
            if wrapper in functions:
                graph.add_edge(q, wrapper)
    return {q: set(group) for group in nx.connected_components(graph) for q in group}


def _can_be_async(fn: FunctionIR) -> bool:
    # Written async, it was a coroutine function in plain Python too.  Otherwise a
    # decorator nalarc does not know (functools.wraps wrappers, lru_cache, retry
    # loops) would get a coroutine instead of a result.
    return fn.written_async or (not fn.implicit and not fn.is_generator and not fn.opaque_decorators)


def _needs_async(fn: FunctionIR, in_scope: bool) -> bool:
    if fn.futures or fn.has_intrinsics:
        return True
    frame_code = in_scope and fn.kind in ("workflow", "helper", "nested")
    return frame_code and (fn.has_dynamic_calls or fn.written_async)


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
    elif fn.opaque_decorators and (fn.futures or fn.has_intrinsics or fn.callees):
        # (Only dynamic calls: nothing to run in parallel; the thread is no loss.)
        decorators = ", ".join(f"@{d}" for d in fn.opaque_decorators)
        ctx.warn(path, fn.span, f"{name} is decorated with {decorators}, which nalarc cannot see into: "
                 "it stays synchronous and runs in a worker thread, waiting where it needs a value")


def _path_of(fn: FunctionIR, program: Program) -> str:
    module = fn.qualname.partition(":")[0]
    for mod in program.modules:
        if mod.name == module:
            return mod.path
    return module
