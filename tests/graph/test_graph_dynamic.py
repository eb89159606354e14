"""The run graph: dependencies from a trace, the critical path, parents, timeline lanes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graph_support import EXAMPLE_NAMES

from nalarc.graph import TraceError, load_trace, render_text, trace_graph


def call(name: str, future: str, start_ms: float, dur_ms: float, deps: list[str] = (), *,  # type: ignore[assignment]
         stage: int = 1, tid: int = 1, request: str = "req00001", ok: bool = True) -> dict[str, Any]:
    return {"name": name, "cat": "call", "ph": "X", "ts": start_ms * 1000, "dur": dur_ms * 1000, "pid": 7, "tid": tid,
            "args": {"future": future, "instance": name, "session": "s", "request": request, "stage": stage,
                     "queue_ms": 0.0, "depends_on": list(deps), "ok": ok}}


def by_label(graph: Any) -> dict[str, Any]:
    return {n.label: n for n in graph.nodes}


def test_critical_path_is_the_longest_chain_by_duration() -> None:
    doc = {"traceEvents": [
        call("a", "r:1", 0, 100, tid=1),
        call("b", "r:2", 0, 300, tid=2),
        call("d", "r:3", 0, 320, tid=3),  # longest single call, but a chain beats it
        call("c", "r:4", 300, 50, ["r:1", "r:2"], tid=4),
    ]}
    graph = trace_graph(doc)
    nodes = by_label(graph)
    assert {n.label for n in graph.nodes if n.critical} == {"b", "c"}
    deps = {(graph.node(e.src).label, graph.node(e.dst).label, e.critical) for e in graph.edges if e.kind == "dep"}
    assert deps == {("a", "c", False), ("b", "c", True)}
    assert "critical path 350 ms: b → c" in graph.summary[0]
    assert nodes["c"].sub == "r:4 · 50 ms"
    assert dict(nodes["c"].details)["depends on"] == "r:1, r:2"


def test_ids_repeat_per_frame_and_resolve_inside_the_same_parent() -> None:
    # The workflow's r:1 and r:2, and an agent call r:2 whose own calls are r:1 and r:2 again.
    doc = {"traceEvents": [
        call("top1", "r:1", 0, 10, tid=1),
        call("agent", "r:2", 0, 500, tid=2),
        call("inner1", "r:1", 20, 100, stage=2, tid=3),
        call("inner2", "r:2", 130, 100, ["r:1"], stage=2, tid=4),
        call("after", "r:3", 510, 10, ["r:2"], tid=5),
    ]}
    graph = trace_graph(doc)
    deps = {(graph.node(e.src).label, graph.node(e.dst).label) for e in graph.edges if e.kind == "dep"}
    assert deps == {("inner1", "inner2"), ("agent", "after")}
    calls = {(graph.node(e.src).label, graph.node(e.dst).label) for e in graph.edges if e.kind == "call"}
    assert calls == {("agent", "inner1"), ("agent", "inner2")}
    nodes = by_label(graph)
    assert nodes["inner1"].cluster == nodes["inner2"].cluster != nodes["agent"].cluster
    assert {c.kind for c in graph.clusters} == {"request", "inside"}


def test_calls_launched_right_after_another_ended_waited_for_it() -> None:
    doc = {"traceEvents": [
        call("plan", "r:1", 0, 100),
        call("other", "r:2", 0, 30),
        call("search", "r:3", 100.4, 200),  # launched 0.4 ms after plan ended
        call("search", "r:4", 100.5, 250),
        call("late", "r:5", 400, 10),  # 50 ms after the last search: not a wait
        call("inner", "r:1", 101, 10, stage=2),  # another frame (inside a search)
    ]}
    graph = trace_graph(doc)
    waits = {(graph.node(e.src).sub, graph.node(e.dst).sub) for e in graph.edges if e.kind == "wait"}
    assert waits == {("r:1 · 100 ms", "r:3 · 200 ms"), ("r:1 · 100 ms", "r:4 · 250 ms")}
    assert [n.sub for n in graph.nodes if n.critical] == ["r:1 · 100 ms", "r:4 · 250 ms"]
    assert "after plan (r:1)" in render_text(graph)


def test_overlapping_calls_of_one_instance_stack_in_its_lane() -> None:
    doc = {"traceEvents": [
        {"name": "thread_name", "ph": "M", "pid": 7, "tid": 1, "args": {"name": "Writer#0"}},
        {"name": "process_name", "ph": "M", "pid": 7, "tid": 0, "args": {"name": "worker-1"}},
        call("w", "r:1", 0, 100),
        call("w", "r:2", 50, 100),
        call("w", "r:3", 120, 10),
    ]}
    graph = trace_graph(doc)
    [lane] = graph.lanes
    assert lane.label == "Writer#0 · worker-1" and lane.rows == 2
    assert [b.row for b in graph.bars] == [0, 1, 0]
    assert [b.start for b in graph.bars] == [0, 50, 120]


def test_failed_calls_and_unknown_dependencies() -> None:
    graph = trace_graph({"traceEvents": [call("x", "r:1", 0, 5, ["r:9"], ok=False)]})
    [node] = graph.nodes
    assert node.failed and "failed" in node.badges
    assert dict(node.details)["not in trace"] == "r:9"
    assert "[failed]" in render_text(graph)


def test_bad_traces() -> None:
    with pytest.raises(TraceError, match="not JSON"):
        load_trace("{")
    with pytest.raises(TraceError, match="traceEvents"):
        load_trace('{"x": 1}')
    with pytest.raises(TraceError, match="no call events"):
        trace_graph(load_trace("[]"))
    assert load_trace(json.dumps([call("a", "r:1", 0, 1)]))["traceEvents"][0]["name"] == "a"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_runs(name: str, example_traces: dict[str, Any]) -> None:
    trace = example_traces[name]
    graph = trace_graph(trace)
    calls = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(graph.nodes) == len(graph.bars) == len(calls)
    assert any(n.critical for n in graph.nodes)
    text = render_text(graph)
    assert "critical path" in text
    # the critical path is a chain of edges of the graph
    path = [n.id for n in graph.nodes if n.critical]
    critical_edges = {(e.src, e.dst) for e in graph.edges if e.critical}
    assert len(critical_edges) == len(path) - 1
    assert all(src in path and dst in path for src, dst in critical_edges)
    # recorded dependencies are exactly the trace's depends_on
    assert sum(1 for e in graph.edges if e.kind == "dep") == sum(len(e["args"]["depends_on"]) for e in calls)
    if name == "support_router":
        # the tech agent gets the customer as an argument; it is the longest call, so it is critical
        assert "TechAgent.handle" in text and "inside TechAgent.handle" in text
        kinds = {(graph.node(e.src).label, graph.node(e.dst).label): e.kind for e in graph.edges}
        assert kinds[("lookup_customer", "TechAgent.handle")] == "dep"
        assert next(n for n in graph.nodes if n.label == "TechAgent.handle").critical
    if name == "research_assistant":
        # heat pump, solar panels, house, cost: one search each, all at once
        assert sum(1 for n in graph.nodes if n.label == "search") == 4
        # no future is passed on: every result is awaited first (the waits are inferred from timing)
        assert not [e for e in graph.edges if e.kind == "dep"]
        assert not [e for e in trace_graph(trace, infer_waits=False).edges if e.kind != "call"]
