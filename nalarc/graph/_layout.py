"""A small compound layered layout (for the HTML view, which must not need Graphviz).

Every cluster is a box laid out on its own: its items (direct child nodes and
child clusters, each taken as one block) are layered by the dependencies
between them (networkx topological generations of the condensation, so
cycles between blocks share a layer), ordered in a layer by the barycenter of
their predecessors, rows stacked top to bottom.  A cluster's header node gets
a row of its own on top.  Boxes never overlap; edges are cubic curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ._escape import clean, shorten
from ._model import GCluster, GNode, Graph, label_lines

CHAR_W = 6.6  # 11px monospace
LINE_H = 15.0
PAD_X = 10.0
PAD_Y = 6.0
GAP_X = 22.0
GAP_Y = 42.0
CLUSTER_PAD = 14.0
CLUSTER_HEAD = 22.0
MAX_CHARS = 48


@dataclass
class Box:
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass
class Layout:
    nodes: dict[str, Box] = field(default_factory=dict)
    clusters: dict[str, Box] = field(default_factory=dict)
    #: SVG path data per edge (index into ``graph.edges``) and where its label goes.
    paths: list[tuple[str, float, float]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def display_lines(node: GNode) -> list[str]:
    return [shorten(clean(line), MAX_CHARS) for line in label_lines(node)]


def _node_size(node: GNode) -> tuple[float, float]:
    lines = display_lines(node)
    width = max(len(line) for line in lines) * CHAR_W + 2 * PAD_X
    return max(width, 56.0), len(lines) * LINE_H + 2 * PAD_Y


@dataclass
class _Block:
    key: str
    is_cluster: bool
    order: float
    w: float = 0.0
    h: float = 0.0
    #: children's offsets inside a cluster block
    offsets: list[tuple[str, bool, float, float]] = field(default_factory=list)


def layout(graph: Graph) -> Layout:
    clusters_by_parent, nodes_by_cluster = graph.children()
    cluster_map: dict[str, GCluster] = {c.id: c for c in graph.clusters}
    chains: dict[str, list[str]] = {}
    for n in graph.nodes:
        chain: list[str] = []
        current = n.cluster
        while current is not None:
            chain.append(current)
            current = cluster_map[current].parent if current in cluster_map else None
        chains[n.id] = chain[::-1]
    sizes = {n.id: _node_size(n) for n in graph.nodes}
    orders = {n.id: n.order for n in graph.nodes}

    def item_in(container: str | None, node_id: str) -> str | None:
        chain = chains[node_id]
        if container is None:
            return chain[0] if chain else node_id
        if container not in chain:
            return None
        index = chain.index(container) + 1
        return chain[index] if index < len(chain) else node_id

    blocks: dict[str, _Block] = {}

    def measure(container: str | None) -> _Block:
        header = cluster_map[container].header if container is not None else None
        items: list[_Block] = []
        for c in clusters_by_parent.get(container, []):
            items.append(measure(c.id))
        for n in nodes_by_cluster.get(container, []):
            w, h = sizes[n.id]
            block = _Block(n.id, False, orders[n.id], w, h)
            blocks[n.id] = block
            items.append(block)
        keys = {b.key for b in items}
        g: nx.DiGraph[str] = nx.DiGraph()
        g.add_nodes_from(k for k in keys if k != header)
        for e in graph.edges:
            src, dst = item_in(container, e.src), item_in(container, e.dst)
            if src is not None and dst is not None and src != dst and src in g and dst in g:
                g.add_edge(src, dst)
        by_key = {b.key: b for b in items}
        rows: list[list[_Block]] = []
        if header is not None and header in by_key:
            rows.append([by_key[header]])
        condensed = nx.condensation(g)
        members = condensed.graph["mapping"]
        scc_items: dict[int, list[str]] = {}
        for item, scc in members.items():
            scc_items.setdefault(scc, []).append(item)
        x_of: dict[str, float] = {}
        for generation in nx.topological_generations(condensed):
            layer = [by_key[k] for scc in generation for k in scc_items[scc]]
            with_preds, without = [], []
            for b in layer:
                xs = [x_of[p] for p in g.predecessors(b.key) if p in x_of]
                if xs:
                    with_preds.append((sum(xs) / len(xs), b.order, b))
                else:
                    without.append((b.order, b))
            row = [b for _, _, b in sorted(with_preds, key=lambda t: (t[0], t[1]))]
            row += [b for _, b in sorted(without, key=lambda t: t[0])]
            x = 0.0
            for b in row:
                x_of[b.key] = x + b.w / 2
                x += b.w + GAP_X
            rows.append(row)
        inner_w = max((sum(b.w for b in row) + GAP_X * (len(row) - 1) for row in rows), default=0.0)
        pad = CLUSTER_PAD if container is not None else 0.0
        head = CLUSTER_HEAD if container is not None else 0.0
        label_w = len(clean(cluster_map[container].label)) * CHAR_W + 2 * pad if container is not None else 0.0
        width = max(inner_w + 2 * pad, label_w, 80.0 if container is not None else 0.0)
        offsets: list[tuple[str, bool, float, float]] = []
        y = head + pad
        for row in rows:
            row_w = sum(b.w for b in row) + GAP_X * (len(row) - 1)
            x = (width - row_w) / 2
            for b in row:
                offsets.append((b.key, b.is_cluster, x, y))
                x += b.w + GAP_X
            y += max(b.h for b in row) + GAP_Y
        height = (y - GAP_Y + pad) if rows else head + 2 * pad
        key = container if container is not None else ""
        order = cluster_map[container].order if container is not None else 0.0
        block = _Block(key, True, order, width, height, offsets)
        blocks[key] = block
        return block

    root = measure(None)
    result = Layout()
    margin = 20.0

    def place(block: _Block, x0: float, y0: float) -> None:
        for key, is_cluster, dx, dy in block.offsets:
            child = blocks[key]
            if is_cluster:
                result.clusters[key] = Box(x0 + dx, y0 + dy, child.w, child.h)
                place(child, x0 + dx, y0 + dy)
            else:
                result.nodes[key] = Box(x0 + dx, y0 + dy, child.w, child.h)

    place(root, margin, margin)
    result.width = root.w + 2 * margin
    result.height = root.h + 2 * margin
    for e in graph.edges:
        result.paths.append(_route(result.nodes[e.src], result.nodes[e.dst]))
    return result


def _route(a: Box, b: Box) -> tuple[str, float, float]:
    """A cubic curve from ``a`` to ``b``: downwards when ``b`` is below, else around the right side."""
    if b.y >= a.y + a.h - 1:
        x1, y1, x2, y2 = a.cx, a.y + a.h, b.cx, b.y
        bend = max((y2 - y1) / 2, 20.0)
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
        return d, (x1 + x2) / 2, (y1 + y2) / 2
    if b.y + b.h <= a.y + 1:
        x1, y1, x2, y2 = a.cx, a.y, b.cx, b.y + b.h
        bend = max((y1 - y2) / 2, 20.0)
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 - bend:.1f} {x2:.1f},{y2 + bend:.1f} {x2:.1f},{y2:.1f}"
        return d, (x1 + x2) / 2, (y1 + y2) / 2
    # side by side
    if b.x >= a.x:
        x1, y1, x2, y2 = a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2
    else:
        x1, y1, x2, y2 = a.x, a.y + a.h / 2, b.x + b.w, b.y + b.h / 2
    mid = (x1 + x2) / 2
    d = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return d, mid, (y1 + y2) / 2
