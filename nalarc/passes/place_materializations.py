"""Materialization placement: keep only the waits that can matter, as late as possible.

Reads: bindings, materialization candidates, ``is_async`` of the function and
of its callees.
Writes: :attr:`FunctionIR.maybe_pending` and :attr:`MaterializeNode.needed`;
``is_region`` for synchronous functions that still read pending values.

Every candidate already sits at the use that needs the value (the latest
point); this pass drops those that can never see a future, using a small
lattice over names: *plain* or *maybe pending*, joined over all assignments
of a name (flow-insensitive, so always conservative).  Parameters of
asynchronous functions are *maybe*: callers pass futures through.
Parameters of synchronous functions are *plain*: every caller hands
synchronous code materialized values.

Example::

    total = 0                 total: plain (constant, then operator results)
    r = search(q)             r: maybe (a future)
    if r: ...                 m0 test r        needed
    total += 1                m1 operator total  dropped
"""

from __future__ import annotations

from ..ir import FunctionIR, MaterializeNode, Program
from ._context import PassContext


def run(program: Program, ctx: PassContext) -> Program:
    functions = program.functions()
    out = {q: _place(fn, functions) for q, fn in functions.items()}
    return program.replace_functions(out)


def maybe_pending(fn: FunctionIR, functions: dict[str, FunctionIR]) -> set[str]:
    """Names that may hold a future somewhere in ``fn`` (least fixpoint)."""
    params = set(fn.params)
    maybe: set[str] = set()
    changed = True
    while changed:
        changed = False
        for b in fn.bindings:
            if b.name in maybe:
                continue
            if b.source == "future":
                hit = True
            elif b.source == "maybe":
                hit = fn.is_async or (bool(fn.futures) and b.name not in params)
            elif b.source == "alias":
                hit = any(r in maybe for r in b.refs)
            else:
                hit = False
            if hit:
                maybe.add(b.name)
                changed = True
    return maybe


def _needed(mat: MaterializeNode, fn: FunctionIR, maybe: set[str], functions: dict[str, FunctionIR]) -> bool:
    if mat.reason == "return" and fn.is_async:
        return False  # callers take futures through
    source = mat.source
    if source == "name":
        return bool(set(mat.names) & maybe)
    if source == "closure":
        parent = functions.get(fn.parent or "")
        return parent is None or parent.is_async or parent.is_region or bool(parent.futures)
    if source.startswith("call:compiled:"):
        target = functions.get(source.removeprefix("call:compiled:"))
        return target is not None and target.is_async
    if source == "call:plain":
        return False
    if source in ("call:component", "handle-attribute"):
        return True
    if source == "attribute":
        # ``x.a`` where ``x`` may be an agent handle: a handle's data attribute is
        # read on its instance, as a future (only in code that has futures).
        return (fn.is_async or bool(fn.futures)) and bool(set(mat.names) & maybe)
    # subscripts, dynamic calls, and/or/if-else, displays: only where futures exist
    return fn.is_async or bool(fn.futures) or bool(maybe) or _reads_closures(fn, functions)


def _reads_closures(fn: FunctionIR, functions: dict[str, FunctionIR]) -> bool:
    parent = functions.get(fn.parent or "")
    if parent is None or not (parent.is_async or parent.futures):
        return False
    return any(m.source == "closure" for m in fn.materializations)


def _place(fn: FunctionIR, functions: dict[str, FunctionIR]) -> FunctionIR:
    maybe = maybe_pending(fn, functions)
    mats = tuple(m.with_changes(needed=_needed(m, fn, maybe, functions)) for m in fn.materializations)
    needs_blocking = not fn.is_async and (bool(fn.futures) or any(m.needed for m in mats))
    return fn.with_changes(
        maybe_pending=tuple(sorted(maybe)),
        materializations=mats,
        is_region=fn.is_region or needs_blocking,
    )
