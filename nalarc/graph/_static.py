"""The compiled graph of an app, from its IR.

Nodes: one per workflow (and per other function with call sites), per
component, per call site (``FutureNode``) and per materialization a future
feeds (or every needed one, with ``all_waits``).  Control regions become
nested clusters; a call site inside a ``for``/``while``/comprehension (at
any depth) stands for N calls and is marked ``×N``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from ..ir import EFFECT, ComponentIR, FunctionIR, FutureNode, MaterializeNode, Program
from ._model import LOOP_KINDS, GCluster, GEdge, GNode, Graph


def function_node_id(qualname: str) -> str:
    return f"function:{qualname}"


def call_node_id(qualname: str, future: str) -> str:
    return f"call:{qualname}/{future}"


def wait_node_id(qualname: str, materialization: str) -> str:
    return f"wait:{qualname}/{materialization}"


def component_node_id(key: str) -> str:
    return f"component:{key}"


def _short(qualified: str) -> str:
    """``module:Qual.name`` -> ``Qual.name``."""
    return qualified.partition(":")[2] or qualified


def _line(span: tuple[int, int, int, int]) -> str:
    return f"line {span[0]}"


def _args(future: FutureNode) -> str:
    parts = []
    for arg in future.args:
        shown = ", ".join(arg.names) or "…"
        if arg.slot.startswith("k="):
            parts.append(f"{arg.slot[2:]}={shown}")
        elif arg.slot in ("*", "**"):
            parts.append(f"{arg.slot}{shown}")
        else:
            parts.append(shown)
    return ", ".join(parts)


def _target(future: FutureNode) -> str:
    return _short(future.component) + (f".{future.method}" if future.method else "")


def _component_badges(comp: ComponentIR) -> tuple[str, ...]:
    badges = []
    for name, value in comp.directives:
        badges.append(name if value is True else f"{name}={value!r}")
    if comp.managed:
        badges.append("managed: " + ", ".join(comp.managed))
    if comp.reads:
        badges.append("reads: " + ", ".join(comp.reads))
    if comp.writes:
        badges.append("writes: " + ", ".join(comp.writes))
    return tuple(badges)


def _method_functions(comp: ComponentIR, functions: dict[str, FunctionIR]) -> list[str]:
    """Functions implementing ``comp`` (its methods, or the tool itself)."""
    return [qualname for _, qualname in comp.implementations if qualname in functions]


def _selected_functions(program: Program, workflow: str | None) -> list[FunctionIR]:
    functions = program.functions()
    workflows = [f"{m.name}:{w}" for m in program.modules for w in m.workflows]
    shown = [f for f in functions.values() if f.futures or f.qualname in workflows or f.kind == "workflow"]
    if workflow is None:
        return shown
    roots = [q for q in workflows if q == workflow or _short(q) == workflow]
    if not roots:
        raise KeyError(workflow)
    components = program.components()
    seen: set[str] = set()
    todo = deque(roots)
    while todo:
        name = todo.popleft()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        fn = functions[name]
        todo.extend(fn.callees)
        for fut in fn.futures:
            comp = components.get(fut.component)
            if comp is not None:
                todo.extend(_method_functions(comp, functions))
    return [f for f in shown if f.qualname in seen]


def _in_loop(region: str, parents: Mapping[str, str | None], kinds: Mapping[str, str]) -> bool:
    current: str | None = region
    while current is not None:
        if kinds.get(current) in LOOP_KINDS:
            return True
        current = parents.get(current)
    return False


def static_graph(program: Program, *, workflow: str | None = None, all_waits: bool = False) -> Graph:
    """The graph of ``program``; ``workflow`` keeps what that workflow can reach.

    Raises:
        KeyError: no workflow is called ``workflow``.
    """
    functions = program.functions()
    components = program.components()
    selected = _selected_functions(program, workflow)
    nodes: list[GNode] = []
    edges: list[GEdge] = []
    clusters: list[GCluster] = []
    used_components: set[str] = set()
    workflows = {f"{m.name}:{w}" for m in program.modules for w in m.workflows}

    for index, fn in enumerate(selected):
        _function(fn, index, workflows, nodes, edges, clusters, all_waits)
        for fut in fn.futures:
            used_components.add(fut.component)

    shown_functions = {f.qualname for f in selected}
    for order, key in enumerate(sorted(used_components)):
        comp = components.get(key)
        node_id = component_node_id(key)
        if comp is None:
            nodes.append(GNode(node_id, "component", _short(key), "component", (), None,
                               (("key", key),), role="component", order=1000 + order, ref=_short(key)))
            continue
        retry = ("retry-safe",) if comp.retry_safe else ()
        methods = ", ".join(f"{name}({', '.join(params)})" for name, params in comp.methods)
        nodes.append(GNode(
            node_id, "component", _short(key), comp.kind, _component_badges(comp), None,
            (("key", key), ("kind", comp.kind), ("methods", methods), ("defined", _line(comp.span)))
            + tuple(("directive " + k, repr(v)) for k, v in comp.directives)
            + (("managed", ", ".join(comp.managed)),) * bool(comp.managed)
            + (("reads", ", ".join(comp.reads)),) * bool(comp.reads)
            + (("writes", ", ".join(comp.writes)),) * bool(comp.writes)
            + (("retry", "safe"),) * bool(retry),
            role=comp.kind, order=1000 + order, ref=_short(key),
        ))
        for target in _method_functions(comp, functions):
            if target in shown_functions:
                edges.append(GEdge(node_id, function_node_id(target), "method"))

    for fn in selected:
        for callee in fn.callees:
            if callee in shown_functions and callee != fn.qualname:
                edges.append(GEdge(function_node_id(fn.qualname), function_node_id(callee), "call"))

    summary = []
    for d in program.diagnostics:
        summary.append(f"{d.severity}: {d.path}:{d.span[0]}:{d.span[1] + 1}: {d.message}")
    unique = tuple(dict.fromkeys(edges))
    return Graph("static", program.app, tuple(nodes), unique, tuple(clusters), tuple(summary))


def _function(
    fn: FunctionIR, index: int, workflows: set[str], nodes: list[GNode], edges: list[GEdge],
    clusters: list[GCluster], all_waits: bool,
) -> None:
    q = fn.qualname
    parents = {r.id: r.parent for r in fn.regions}
    kinds = {r.id: r.kind for r in fn.regions}
    root_regions = {r.id for r in fn.regions if r.kind == "function" or r.parent is None}
    fn_cluster = f"cluster:{q}"
    role = "workflow" if q in workflows or fn.kind == "workflow" else fn.kind.replace("_", " ")
    flags = [k for k, v in (("async", fn.is_async), ("blocking region", fn.is_region)) if v]
    header = function_node_id(q)
    fn_details: list[tuple[str, str]] = [("function", q), ("kind", role), ("defined", _line(fn.span))]
    if fn.critical_path:
        fn_details.append(("critical path", f"{fn.critical_path} call(s)"))
    for group in fn.parallel_groups:
        fn_details.append(("parallel", "{" + ", ".join(group) + "}"))
    clusters.append(GCluster(fn_cluster, "function", q, None, details=tuple(fn_details), order=index, header=header))
    nodes.append(GNode(
        header, "function", f"{_short(q)}({', '.join(fn.params[1:] if fn.owner and fn.params else fn.params)})",
        " · ".join([role, *flags]), (f"critical path {fn.critical_path}",) if fn.critical_path else (),
        fn_cluster, tuple(fn_details), role=role, order=-1, ref=_short(q),
    ))

    # Regions that hold something shown become clusters (the function region is the function).
    feeds: dict[str, list[str]] = {}
    for e in fn.edges:
        feeds.setdefault(e.dst, []).append(e.src)
    shown_waits = [m for m in fn.materializations if m.needed and (all_waits or m.id in feeds)]
    occupied = {f.region for f in fn.futures} | {m.region for m in shown_waits}
    needed: set[str] = set()
    for region in occupied:
        current: str | None = region
        while current is not None and current not in root_regions:
            needed.add(current)
            current = parents.get(current)

    def cluster_of(region: str) -> str:
        return fn_cluster if region in root_regions or region not in needed else f"region:{q}/{region}"

    for r in fn.regions:
        if r.id in needed:
            loop = r.kind in LOOP_KINDS
            parent = r.parent if r.parent is not None else next(iter(root_regions), None)
            clusters.append(GCluster(
                cluster_of(r.id), r.kind, f"{r.kind} @ {_line(r.span)}" + (" ×N" if loop else ""),
                cluster_of(parent) if parent is not None else fn_cluster, loop=loop,
                details=(("region", r.id), ("kind", r.kind), ("span", f"lines {r.span[0]}-{r.span[2]}"))
                + ((("sequential for", ", ".join(r.visible)),) if r.visible else ()),
                order=r.span[0] * 10000 + r.span[1],
            ))

    parallel = {fid: group for group in fn.parallel_groups for fid in group}
    for fut in fn.futures:
        loop = _in_loop(fut.region, parents, kinds)
        badges = ["×N"] if loop else []
        if fut.critical:
            badges.append("critical")
        if fut.state != "none":
            badges.append(f"state: {fut.state}")
        if fut.flags & EFFECT:
            badges.append("effect")
        sub = f"{fut.id} · stage {fut.stage}" + (f" → {fut.binds}" if fut.binds else "")
        details: list[tuple[str, str]] = [
            ("future", fut.id), ("component", fut.component), ("method", fut.method or "-"),
            ("arguments", _args(fut) or "-"), ("at", f"line {fut.span[0]}, col {fut.span[1] + 1}"),
            ("stage", str(fut.stage)), ("state", fut.state),
        ]
        if fut.binds:
            details.append(("binds", fut.binds))
        if loop:
            details.append(("fan-out", "one call per iteration (×N)"))
        if fut.id in parallel:
            details.append(("parallel with", ", ".join(x for x in parallel[fut.id] if x != fut.id)))
        if fut.retry_safe:
            details.append(("retry", "safe"))
        node_id = call_node_id(q, fut.id)
        nodes.append(GNode(
            node_id, "call", f"{_target(fut)}({_args(fut)})", sub, tuple(badges), cluster_of(fut.region),
            tuple(details), loop=loop, critical=fut.critical, role="call", order=fut.span[0] * 10000 + fut.span[1], ref=fut.id,
        ))
        edges.append(GEdge(node_id, component_node_id(fut.component), "call"))

    futures = {f.id for f in fn.futures}
    waits = {m.id: m for m in shown_waits}
    for m in shown_waits:
        nodes.append(_wait_node(q, m, cluster_of(m.region)))
    for e in fn.edges:
        if e.src not in futures:
            continue
        src = call_node_id(q, e.src)
        if e.dst in futures:
            edges.append(GEdge(src, call_node_id(q, e.dst), "dep", e.via or ""))
        elif e.dst in waits:
            edges.append(GEdge(src, wait_node_id(q, e.dst), "wait", e.via or ""))


def _wait_node(q: str, m: MaterializeNode, cluster: str) -> GNode:
    what = ", ".join(m.names) or m.source
    return GNode(
        wait_node_id(q, m.id), "wait", f"wait {what}", f"{m.id} · {m.reason}" + (" · deep" if m.deep else ""),
        (), cluster,
        (("materialization", m.id), ("value", what), ("reason", m.reason), ("deep", "yes" if m.deep else "no"),
         ("at", f"line {m.span[0]}, col {m.span[1] + 1}")),
        role="wait", order=m.span[0] * 10000 + m.span[1] + 0.5, ref=m.id,
    )
