"""What a run actually did: the future DAG of a run trace (``--trace-out``).

One node per call event (``ph: "X"``), one edge per ``depends_on`` entry, the
critical path (the longest chain of dependent calls, by duration) of every
request highlighted, and a timeline with one lane per instance.

With ``infer_waits`` (the default), a call launched right after another call
of the same frame ended (within 5 ms) gets a dashed ``wait`` edge from it: the
workflow materialized that result (a branch test, a loop over it) and only
then made the call.  Those edges are inferred from timing, not recorded; they
take part in the critical path, so it explains the run's wall time.

Future ids are ``request:sequence`` *per frame* (a request, or a component
call that makes calls of its own), so the same id can name a call of the
workflow and a call made inside an agent method.  A dependency is resolved to
the call with that id in the same request that ran inside the same parent
call (inferred from stage and time containment) and ended before the
dependent call started, closest first.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import networkx as nx

from ._model import Bar, GCluster, GEdge, GNode, Graph, Lane

#: Slack for timestamps taken on different sides of a process boundary (µs).
_SLACK_US = 500.0
#: A call launched this soon after another call of its frame ended was waiting for it (µs).
_WAIT_GAP_US = 5000.0


class TraceError(ValueError):
    """The file is not a nalarc run trace."""


@dataclass
class _Call:
    index: int
    name: str
    start: float
    dur: float
    pid: int
    tid: int
    future: str
    instance: str
    session: str
    request: str
    stage: int
    queue_ms: float
    depends_on: list[str]
    ok: bool
    parent: int | None = None

    @property
    def end(self) -> float:
        return self.start + self.dur

    @property
    def created(self) -> float:
        return self.start - self.queue_ms * 1000

    @property
    def node_id(self) -> str:
        return f"event:{self.index}"


def load_trace(text: str) -> dict[str, Any]:
    """Parse a Chrome trace (an object with ``traceEvents``, or a bare event list).

    Raises:
        TraceError: not JSON, or no call events.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"the trace is not JSON: {exc}") from None
    if isinstance(doc, list):
        doc = {"traceEvents": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise TraceError("the trace has no traceEvents list (write one with `nalarc run --trace-out`)")
    return doc


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _calls(doc: dict[str, Any]) -> tuple[list[_Call], dict[int, str], dict[tuple[int, int], str]]:
    processes: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    raw = []
    for event in doc.get("traceEvents", []):
        if not isinstance(event, dict):
            continue
        args = event.get("args") if isinstance(event.get("args"), dict) else {}
        assert isinstance(args, dict)
        pid, tid = int(_number(event.get("pid"))), int(_number(event.get("tid")))
        if event.get("ph") == "M" and event.get("name") == "process_name":
            processes[pid] = str(args.get("name", pid))
        elif event.get("ph") == "M" and event.get("name") == "thread_name":
            threads[(pid, tid)] = str(args.get("name", tid))
        elif event.get("ph") == "X":
            raw.append((event, args, pid, tid))
    raw.sort(key=lambda item: _number(item[0].get("ts")))
    calls = []
    for index, (event, args, pid, tid) in enumerate(raw):
        deps = args.get("depends_on")
        calls.append(_Call(
            index=index, name=str(event.get("name", "?")), start=_number(event.get("ts")),
            dur=max(_number(event.get("dur")), 0.0), pid=pid, tid=tid,
            future=str(args.get("future", f"#{index}")), instance=str(args.get("instance", "")),
            session=str(args.get("session", "")), request=str(args.get("request", "")),
            stage=int(_number(args.get("stage"))), queue_ms=_number(args.get("queue_ms")),
            depends_on=[str(d) for d in deps] if isinstance(deps, list) else [],
            ok=args.get("ok", True) is not False,
        ))
    return calls, processes, threads


def _infer_parents(calls: list[_Call]) -> None:
    """A call of stage s > 1 ran inside the innermost stage s-1 call of its request that spans it."""
    by_request: dict[str, list[_Call]] = {}
    for c in calls:
        by_request.setdefault(c.request, []).append(c)
    for c in calls:
        if c.stage <= 1:
            continue
        spans = [
            p for p in by_request[c.request]
            if p.stage == c.stage - 1 and p.start - _SLACK_US <= c.start and c.end <= p.end + _SLACK_US
        ]
        if spans:
            c.parent = max(spans, key=lambda p: (p.start, -p.index)).index


def _resolve(call: _Call, dep: str, candidates: list[_Call]) -> _Call | None:
    options = [c for c in candidates if c.future == dep and c.index != call.index]
    if not options:
        return None
    return max(options, key=lambda c: (
        c.parent == call.parent,
        c.end <= call.start + _SLACK_US,
        c.stage == call.stage,
        -abs(call.start - c.end),
    ))


def _inferred_waits(call: _Call, frame: list[_Call], deps: list[int]) -> int | None:
    """The call of ``frame`` whose end ``call`` was launched right after (its result was awaited), if any."""
    options = [
        a for a in frame
        if a.index != call.index and a.index not in deps
        and a.end <= call.created + _SLACK_US and call.created - a.end <= _WAIT_GAP_US
    ]
    return max(options, key=lambda a: (a.end, -a.index)).index if options else None


def _critical_path(members: list[_Call], preds: dict[int, list[int]], by_index: dict[int, _Call]) -> list[int]:
    g: nx.DiGraph[int] = nx.DiGraph()
    g.add_nodes_from(c.index for c in members)
    for c in members:
        for d in preds.get(c.index, []):
            if d in g:
                g.add_edge(d, c.index)
    try:
        order = list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        return []
    best: dict[int, float] = {}
    prev: dict[int, int | None] = {}
    for n in order:
        top = max(g.predecessors(n), key=lambda p: best[p], default=None)
        best[n] = by_index[n].dur + (best[top] if top is not None else 0.0)
        prev[n] = top
    if not best:
        return []
    current: int | None = max(best, key=lambda n: (best[n], -n))
    path = []
    while current is not None:
        path.append(current)
        current = prev[current]
    return path[::-1]


def trace_graph(doc: dict[str, Any], *, title: str = "run", infer_waits: bool = True) -> Graph:
    """The future DAG of a run trace (see :func:`load_trace`).

    Raises:
        TraceError: the trace has no call events.
    """
    calls, processes, threads = _calls(doc)
    if not calls:
        raise TraceError("the trace has no call events (ph \"X\")")
    _infer_parents(calls)
    by_index = {c.index: c for c in calls}
    by_request: dict[str, list[_Call]] = {}
    for c in calls:
        by_request.setdefault(c.request, []).append(c)

    deps: dict[int, list[int]] = {}
    unresolved: dict[int, list[str]] = {}
    for c in calls:
        for d in c.depends_on:
            found = _resolve(c, d, by_request[c.request])
            if found is None:
                unresolved.setdefault(c.index, []).append(d)
            elif found.index not in deps.setdefault(c.index, []):
                deps[c.index].append(found.index)

    waits: dict[int, int] = {}
    if infer_waits:
        frames: dict[tuple[str, int | None], list[_Call]] = {}
        for c in calls:
            frames.setdefault((c.request, c.parent), []).append(c)
        for c in calls:
            found_wait = _inferred_waits(c, frames[(c.request, c.parent)], deps.get(c.index, []))
            if found_wait is not None:
                waits[c.index] = found_wait
    preds = {c.index: deps.get(c.index, []) + ([waits[c.index]] if c.index in waits else []) for c in calls}

    t0 = min(c.start for c in calls)
    critical: set[int] = set()
    critical_edges: set[tuple[int, int]] = set()
    summary: list[str] = []
    clusters: list[GCluster] = []
    request_order = sorted(by_request, key=lambda r: min(c.start for c in by_request[r]))
    for number, request in enumerate(request_order):
        members = by_request[request]
        path = _critical_path(members, preds, by_index)
        critical.update(path)
        critical_edges.update(itertools.pairwise(path))
        wall = (max(c.end for c in members) - min(c.start for c in members)) / 1000
        total = sum(by_index[i].dur for i in path) / 1000
        sessions = sorted({c.session for c in members})
        label = f"request {request[:8] or '?'} · session {', '.join(sessions)}"
        chain = " → ".join(by_index[i].name for i in path)
        summary.append(f"{label}: {len(members)} calls in {format_ms(wall)}; "
                       f"critical path {format_ms(total)}: {chain}")
        clusters.append(GCluster(
            f"request:{request}", "request", label, None,
            details=(("request", request), ("session", ", ".join(sessions)), ("calls", str(len(members))),
                     ("wall time", format_ms(wall)), ("critical path", f"{format_ms(total)}: {chain}")),
            order=number,
        ))

    def cluster_of(c: _Call) -> str:
        if c.parent is None:
            return f"request:{c.request}"
        return f"inside:{c.parent}"

    parents = sorted({c.parent for c in calls if c.parent is not None})
    for p in parents:
        parent = by_index[p]
        clusters.append(GCluster(
            f"inside:{p}", "inside", f"inside {parent.name} ({parent.future})", cluster_of(parent),
            details=(("calls made by", f"{parent.name} ({parent.future})"),), order=parent.start,
        ))

    nodes = []
    for c in calls:
        badges = []
        if c.index in critical:
            badges.append("critical")
        if not c.ok:
            badges.append("failed")
        if c.queue_ms >= 1:
            badges.append(f"queued {format_ms(c.queue_ms)}")
        details = [
            ("call", c.name), ("future", c.future), ("instance", c.instance),
            ("process", f"{processes.get(c.pid, '')} (pid {c.pid})".strip()),
            ("session", c.session), ("request", c.request), ("stage", str(c.stage)),
            ("start", f"+{format_ms((c.start - t0) / 1000)}"), ("duration", format_ms(c.dur / 1000)),
            ("queued", format_ms(c.queue_ms)), ("depends on", ", ".join(c.depends_on) or "-"),
            ("ok", "yes" if c.ok else "no"),
        ]
        if c.index in unresolved:
            details.append(("not in trace", ", ".join(unresolved[c.index])))
        nodes.append(GNode(
            c.node_id, "event", c.name, f"{c.future} · {format_ms(c.dur / 1000)}", tuple(badges),
            cluster_of(c), tuple(details), critical=c.index in critical, failed=not c.ok,
            role="call", order=c.start, ref=c.future,
        ))

    edges = []
    for c in calls:
        if c.parent is not None:
            edges.append(GEdge(by_index[c.parent].node_id, c.node_id, "call"))
        for dep in deps.get(c.index, []):
            edges.append(GEdge(by_index[dep].node_id, c.node_id, "dep", critical=(dep, c.index) in critical_edges))
        if c.index in waits:
            w = waits[c.index]
            edges.append(GEdge(by_index[w].node_id, c.node_id, "wait", critical=(w, c.index) in critical_edges))

    lane_keys = sorted({(c.pid, c.tid) for c in calls})
    rows_of: dict[tuple[int, int], list[float]] = {key: [] for key in lane_keys}
    bars = []
    for c in calls:  # sorted by start: greedy interval packing, first free sub-row
        ends = rows_of[(c.pid, c.tid)]
        row = next((i for i, end in enumerate(ends) if end <= c.start), len(ends))
        if row == len(ends):
            ends.append(c.end)
        else:
            ends[row] = c.end
        bars.append(Bar(c.node_id, f"lane:{c.pid}:{c.tid}", (c.start - t0) / 1000, c.dur / 1000, row))
    lanes = tuple(
        Lane(f"lane:{pid}:{tid}", f"{threads.get((pid, tid), str(tid))} · {processes.get(pid, f'pid {pid}')}",
             max(len(rows_of[(pid, tid)]), 1))
        for pid, tid in lane_keys
    )
    return Graph("dynamic", title, tuple(nodes), tuple(edges), tuple(clusters), tuple(summary), lanes, tuple(bars))
