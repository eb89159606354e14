"""Dependency analysis: which futures feed which futures and materializations.

Reads: futures (argument names), bindings (``name = <component call>``),
materializations (the names they read).
Writes: :attr:`FunctionIR.edges` and :attr:`ArgRef.futures`.

A name bound to a future carries it to every later use (flow-insensitively:
any binding that textually precedes the use), so this over-approximates the
runtime graph, which is what the graph view and critical-path estimate want.

Example::

    a = search(q)          f0 search
    b = rank(a)            f1 rank        edge f0 -> f1 via a
    if b: ...              m0 test b      edge f1 -> m0 via b
"""

from __future__ import annotations

from ..ir import ArgRef, DependencyEdge, FunctionIR, FutureNode, Program
from ._context import PassContext


def run(program: Program, ctx: PassContext) -> Program:
    return program.replace_functions({f.qualname: _analyze(f) for f in program.functions().values()})


def _producers(fn: FunctionIR) -> dict[str, list[tuple[tuple[int, int], str]]]:
    """name -> [(position of binding, future id)] for names bound to futures."""
    out: dict[str, list[tuple[tuple[int, int], str]]] = {}
    for b in fn.bindings:
        if b.source == "future":
            out.setdefault(b.name, []).append(((b.span[0], b.span[1]), b.refs[0]))
    return out


def _before(producers: list[tuple[tuple[int, int], str]], pos: tuple[int, int]) -> list[str]:
    return [fid for where, fid in producers if where < pos]


def _nested(fn: FunctionIR, outer: FutureNode) -> list[str]:
    """Futures whose call is written inside ``outer``'s arguments."""
    s = outer.span
    return [
        f.id
        for f in fn.futures
        if f.id != outer.id and (f.span[0], f.span[1]) >= (s[0], s[1]) and (f.span[2], f.span[3]) <= (s[2], s[3])
    ]


def _analyze(fn: FunctionIR) -> FunctionIR:
    producers = _producers(fn)
    edges: list[DependencyEdge] = []
    futures: list[FutureNode] = []
    for fut in fn.futures:
        pos = (fut.span[0], fut.span[1])
        args: list[ArgRef] = []
        for arg in fut.args:
            feeding = sorted({fid for name in arg.names for fid in _before(producers.get(name, []), pos)})
            for name in arg.names:
                for fid in _before(producers.get(name, []), pos):
                    edges.append(DependencyEdge(fid, fut.id, name))
            args.append(arg.with_changes(futures=tuple(feeding)))
        for fid in _nested(fn, fut):
            edges.append(DependencyEdge(fid, fut.id, None))
        futures.append(fut.with_changes(args=tuple(args)))
    for mat in fn.materializations:
        pos = (mat.span[0], mat.span[1])
        for name in mat.names:
            for fid in _before(producers.get(name, []), pos):
                edges.append(DependencyEdge(fid, mat.id, name))
    unique = tuple(dict.fromkeys(edges))
    return fn.with_changes(futures=tuple(futures), edges=unique)
