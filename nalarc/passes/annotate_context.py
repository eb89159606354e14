"""Context annotation: stage depth, critical path and parallel groups.

Reads: futures, dependency edges, the call graph, workflows.
Writes: :attr:`FutureNode.stage` and ``critical``,
:attr:`FunctionIR.critical_path` and ``parallel_groups``.

*Stage* is how deep in the app's call graph a call is made: calls written in
a workflow are stage 1, calls made by code a stage-1 agent runs are stage 2,
and so on (SRTF-like policies run later stages first).  The *critical path*
counts component calls on the longest dependency chain of a function, each
call costing one unit; futures on it are marked.  *Parallel groups* are sets
of futures with no path between them in one region: they may run together.

Example::

    a = t1(x); b = t2(x); c = t3(a, b)     stage 1 each; critical path 2
                                           parallel groups: {f0, f1}
"""

from __future__ import annotations

import networkx as nx

from ..ir import FunctionIR, FutureNode, Program
from ._context import PassContext
from .lower_async import call_graph


def run(program: Program, ctx: PassContext) -> Program:
    functions = program.functions()
    depth = _stages(program, functions)
    out = {q: _annotate(fn, depth.get(q, 0)) for q, fn in functions.items()}
    return program.replace_functions(out)


def _stages(program: Program, functions: dict[str, FunctionIR]) -> dict[str, int]:
    """Depth of each function: workflows 0, code a stage-k call runs: k."""
    graph = call_graph(program)
    components = program.components()
    for fn in functions.values():
        for fut in fn.futures:
            comp = components.get(fut.component)
            if comp is None:
                continue
            implementations = dict(comp.implementations)
            target = implementations.get(fut.method or fut.component.partition(":")[2], "")
            if target in functions:
                graph.add_edge(fn.qualname, target, component=True)
    depth: dict[str, int] = {}
    roots = [q for q, f in functions.items() if f.kind == "workflow"]
    frontier = [(r, 0) for r in roots]
    while frontier:
        node, d = frontier.pop()
        if depth.get(node, 1 << 30) <= d:
            continue
        depth[node] = d
        for succ in graph.successors(node):
            step = 1 if graph.edges[node, succ].get("component") else 0
            frontier.append((succ, d + step))
    return depth


def _annotate(fn: FunctionIR, depth: int) -> FunctionIR:
    if not fn.futures:
        return fn
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(f.id for f in fn.futures)
    graph.add_edges_from((e.src, e.dst) for e in fn.edges if e.dst.startswith("f"))
    graph.remove_edges_from(list(nx.selfloop_edges(graph)))
    # Loops can make a name feed its own producer: collapse cycles first.
    condensed = nx.condensation(graph)
    members = condensed.graph["mapping"]
    path = nx.dag_longest_path(condensed)
    on_path = {fid for fid, scc in members.items() if scc in path} or {fn.futures[0].id}
    futures = tuple(
        f.with_changes(stage=depth + 1, critical=f.id in on_path) for f in fn.futures
    )
    return fn.with_changes(
        futures=futures,
        critical_path=len(on_path),
        parallel_groups=_parallel_groups(fn.futures, graph),
    )


def _parallel_groups(futures: tuple[FutureNode, ...], graph: nx.DiGraph[str]) -> tuple[tuple[str, ...], ...]:
    """Per region, the futures of one topological generation: no path joins them."""
    by_region: dict[str, list[str]] = {}
    for f in futures:
        by_region.setdefault(f.region, []).append(f.id)
    groups: list[tuple[str, ...]] = []
    for ids in by_region.values():
        condensed = nx.condensation(graph.subgraph(ids))
        members = condensed.graph["mapping"]
        for generation in nx.topological_generations(condensed):
            group = sorted((f for f, scc in members.items() if scc in generation), key=ids.index)
            if len(group) > 1:
                groups.append(tuple(group))
    return tuple(groups)
