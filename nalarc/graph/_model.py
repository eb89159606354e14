"""The graph every renderer draws: nodes, edges, nested clusters (and a timeline).

Both the static graph (from the IR) and the dynamic graph (from a run trace)
are built as a :class:`Graph`; the renderers know nothing about either source.
Every string here is raw user text (component names, argument names, ...):
each renderer escapes it for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NodeKind = Literal["function", "component", "call", "wait", "event"]
#: ``dep``: a value flows (future -> future); ``wait``: a future feeds a
#: materialization; ``call``: a call site runs a component, or a call runs
#: inside another; ``method``: a component's method body.
EdgeKind = Literal["dep", "wait", "call", "method"]
ClusterKind = Literal[
    "function", "if", "for", "while", "try", "with", "comprehension", "lambda", "request", "inside",
]

#: Region kinds whose body runs once per element: their call sites fan out (×N).
LOOP_KINDS = frozenset({"for", "while", "comprehension"})


@dataclass(frozen=True)
class GNode:
    #: Unique, stable id (``call:<function>/<future>``, ``event:<n>``, ...).
    id: str
    kind: NodeKind
    #: Main label line (e.g. ``TechAgent.handle(text, customer)``).
    label: str
    #: Second, smaller line (e.g. ``f3 · stage 1``).
    sub: str = ""
    #: Short annotations (``×N``, ``critical``, ``state: write``, ``stateful``).
    badges: tuple[str, ...] = ()
    #: Innermost cluster, or None at the top level.
    cluster: str | None = None
    #: Shown on hover: (key, value) pairs.
    details: tuple[tuple[str, str], ...] = ()
    #: Drawn as a fan-out (one node standing for N calls).
    loop: bool = False
    critical: bool = False
    failed: bool = False
    #: ``tool`` / ``agent`` for components, ``workflow`` / ... for functions.
    role: str = ""
    #: Sort key among siblings (program order, start time).
    order: float = 0.0
    #: Short reference in text output (``f3``, ``m0``, a future id).
    ref: str = ""



def label_lines(node: GNode) -> list[str]:
    """The lines that describe a node: label, sub-line, badges."""
    lines = [node.label]
    if node.sub:
        lines.append(node.sub)
    if node.badges:
        lines.append(" · ".join(node.badges))
    return lines

@dataclass(frozen=True)
class GEdge:
    src: str
    dst: str
    kind: EdgeKind
    label: str = ""
    critical: bool = False


@dataclass(frozen=True)
class GCluster:
    id: str
    kind: ClusterKind
    label: str
    parent: str | None = None
    loop: bool = False
    details: tuple[tuple[str, str], ...] = ()
    order: float = 0.0
    #: A node drawn first in the cluster (a function's entry).
    header: str | None = None


@dataclass(frozen=True)
class Lane:
    """One row of the timeline: an instance in a process."""

    id: str
    label: str
    #: Sub-rows: calls that overlap on one instance are stacked.
    rows: int = 1


@dataclass(frozen=True)
class Bar:
    """One call on the timeline (times in ms from the first call)."""

    node: str
    lane: str
    start: float
    duration: float
    #: Sub-row within the lane.
    row: int = 0


@dataclass(frozen=True)
class Graph:
    #: ``static`` (from the IR) or ``dynamic`` (from a run trace).
    mode: Literal["static", "dynamic"]
    title: str
    nodes: tuple[GNode, ...]
    edges: tuple[GEdge, ...]
    clusters: tuple[GCluster, ...] = ()
    #: Lines shown above the graph (critical paths, warnings).
    summary: tuple[str, ...] = ()
    lanes: tuple[Lane, ...] = ()
    bars: tuple[Bar, ...] = ()
    _index: dict[str, GNode] = field(default_factory=dict, compare=False, repr=False)

    def node(self, node_id: str) -> GNode:
        if not self._index:
            self._index.update((n.id, n) for n in self.nodes)
        return self._index[node_id]

    def children(self) -> tuple[dict[str | None, list[GCluster]], dict[str | None, list[GNode]]]:
        """Clusters and nodes by their parent cluster, each in drawing order."""
        clusters: dict[str | None, list[GCluster]] = {}
        nodes: dict[str | None, list[GNode]] = {}
        for c in self.clusters:
            clusters.setdefault(c.parent, []).append(c)
        for n in self.nodes:
            nodes.setdefault(n.cluster, []).append(n)
        for cs in clusters.values():
            cs.sort(key=lambda c: c.order)
        for ns in nodes.values():
            ns.sort(key=lambda n: n.order)
        return clusters, nodes
