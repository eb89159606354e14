"""The DOT of every example parses (pydot) and has every call site and dependency of the IR."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pydot
import pytest
from graph_support import EXAMPLE_NAMES

from nalarc.graph import dot_unescape, render_dot, static_graph, trace_graph
from nalarc.ir import Program

# pydot's parser uses pyparsing names that newer pyparsing deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")


def all_nodes(graph: Any) -> list[Any]:
    nodes = [n for n in graph.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    for sub in graph.get_subgraphs():
        nodes += all_nodes(sub)
    return nodes


def all_edges(graph: Any) -> list[Any]:
    edges = list(graph.get_edges())
    for sub in graph.get_subgraphs():
        edges += all_edges(sub)
    return edges


def parse(dot: str) -> tuple[dict[str, str], dict[str, Any], set[tuple[str, str]]]:
    """(DOT node name -> our id, our id -> pydot node, visible edges as (our id, our id))."""
    [graph] = pydot.graph_from_dot_data(dot)
    names: dict[str, str] = {}
    by_id: dict[str, Any] = {}
    for node in all_nodes(graph):
        our_id = dot_unescape(node.get("id"))
        names[node.get_name()] = our_id
        by_id[our_id] = node
    edges = set()
    for edge in all_edges(graph):
        if edge.get("style") == "invis":
            continue
        edges.add((names[edge.get_source()], names[edge.get_destination()]))
    return names, by_id, edges


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_future_and_dependency_is_in_the_dot(name: str, example_programs: dict[str, Program]) -> None:
    program = example_programs[name]
    dot = render_dot(static_graph(program))
    _, by_id, edges = parse(dot)
    module = next(m for m in program.modules if m.name == name)
    assert module.workflows, "the example has workflows"
    functions = program.functions()
    for wf in module.workflows:
        assert f"function:{name}:{wf}" in by_id
    checked_futures = checked_edges = 0
    for fn in functions.values():
        if fn.kind != "workflow" and not fn.futures:
            continue
        futures = {f.id: f for f in fn.futures}
        for fut in fn.futures:
            node = by_id[f"call:{fn.qualname}/{fut.id}"]
            label = dot_unescape(node.get("label"))
            target = fut.component.partition(":")[2] + (f".{fut.method}" if fut.method else "")
            assert label.startswith(target + "("), label
            assert f"stage {fut.stage}" in label
            # the call site points at its component
            assert (f"call:{fn.qualname}/{fut.id}", f"component:{fut.component}") in edges
            checked_futures += 1
        for e in fn.edges:
            if e.src in futures and e.dst in futures:
                assert (f"call:{fn.qualname}/{e.src}", f"call:{fn.qualname}/{e.dst}") in edges
                checked_edges += 1
            elif e.src in futures:  # future -> materialization: a wait node
                assert (f"call:{fn.qualname}/{e.src}", f"wait:{fn.qualname}/{e.dst}") in edges
    assert checked_futures == sum(len(f.futures) for f in functions.values())
    if name == "support_router":
        assert checked_edges == 2  # customer feeds both handlers


def test_loop_call_sites_are_one_node_marked_xn(example_programs: dict[str, Program]) -> None:
    _, by_id, _ = parse(render_dot(static_graph(example_programs["research_assistant"])))
    plan = by_id["call:research_assistant:research/f0"]
    search = by_id["call:research_assistant:research/f1"]
    score = by_id["call:research_assistant:research/f2"]
    assert "×N" not in dot_unescape(plan.get("label"))
    for node in (search, score):
        assert "×N" in dot_unescape(node.get("label"))
        assert node.get("peripheries") == "2"
    # one node per call site, not per iteration
    assert sum(1 for k in by_id if k.startswith("call:")) == 4


def test_regions_are_nested_clusters(example_programs: dict[str, Program]) -> None:
    [graph] = pydot.graph_from_dot_data(render_dot(static_graph(example_programs["support_router"])))

    def tree(g: Any) -> dict[str, Any]:
        return {dot_unescape(s.get("id")): tree(s) for s in g.get_subgraphs()}

    def find(t: dict[str, Any], key: str) -> dict[str, Any]:
        for k, v in t.items():
            if k == key:
                return v  # type: ignore[no-any-return]
            found = find(v, key)
            if found is not None:
                return found
        return None  # type: ignore[return-value]

    clusters = tree(graph)
    tech = find(clusters, "cluster:support_router:TechAgent.handle")
    assert tech is not None
    outer_for = find(tech, "region:support_router:TechAgent.handle/r3")
    assert "region:support_router:TechAgent.handle/r4" in outer_for  # for inside for
    assert "region:support_router:TechAgent.handle/r5" in outer_for["region:support_router:TechAgent.handle/r4"]
    ticket = find(clusters, "cluster:support_router:handle_ticket")
    assert "region:support_router:handle_ticket/r1" in ticket  # the if


def test_annotations(example_programs: dict[str, Program]) -> None:
    _, by_id, edges = parse(render_dot(static_graph(example_programs["research_assistant"])))
    writer = dot_unescape(by_id["call:research_assistant:research/f3"].get("label"))
    assert "state: write" in writer
    component = dot_unescape(by_id["component:research_assistant:Writer"].get("label"))
    assert "managed: history" in component and "writes: summarize" in component
    _, by_id, edges = parse(render_dot(static_graph(example_programs["support_router"])))
    assert "idempotent" in dot_unescape(by_id["component:support_router:run_diagnostics"].get("label"))
    # the agent links to its method's body, which has call sites of its own
    assert ("component:support_router:TechAgent", "function:support_router:TechAgent.handle") in edges
    assert "critical" in dot_unescape(by_id["call:support_router:handle_ticket/f1"].get("label"))


def test_workflow_filter(example_programs: dict[str, Program]) -> None:
    graph = static_graph(example_programs["support_router"], workflow="handle_ticket")
    assert {n.id for n in graph.nodes if n.kind == "function"} == {
        "function:support_router:handle_ticket", "function:support_router:TechAgent.handle"}
    with pytest.raises(KeyError):
        static_graph(example_programs["support_router"], workflow="nope")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_run_dot_has_every_call_and_dependency(name: str, example_traces: dict[str, Any]) -> None:
    trace = example_traces[name]
    calls = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    graph = trace_graph(trace)
    _, by_id, edges = parse(render_dot(graph))
    assert len([k for k in by_id if k.startswith("event:")]) == len(calls)
    dep_edges = {(e.src, e.dst) for e in graph.edges if e.kind == "dep"}
    assert dep_edges <= edges
    assert sum(len(e["args"]["depends_on"]) for e in calls) == len(dep_edges)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (apt-get install graphviz)")
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_graphviz_accepts_the_dot(name: str, example_programs: dict[str, Program], tmp_path: Path) -> None:
    proc = subprocess.run(["dot", "-Tsvg"], input=render_dot(static_graph(example_programs[name])),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "<svg" in proc.stdout, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
