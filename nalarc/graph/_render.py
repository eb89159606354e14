"""Text (a rich tree), Mermaid and Graphviz DOT renderings of a :class:`Graph`."""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from ._escape import clean, dot_lines, dot_quote, mermaid_escape
from ._model import GCluster, GEdge, GNode, Graph, label_lines

# ---------------------------------------------------------------- text


_BADGE_STYLE = {"critical": "bold red", "×N": "bold magenta", "failed": "bold red reverse"}


def _node_text(graph: Graph, node: GNode, incoming: dict[str, list[GEdge]]) -> Text:
    text = Text()
    if node.kind == "component":
        text.append(f"{node.sub} ", style="cyan")
        text.append(clean(node.label), style="bold cyan")
    elif node.kind == "function":
        text.append(clean(node.label), style="bold blue")
        text.append(f"  {clean(node.sub)}", style="dim")
    elif node.kind == "wait":
        text.append(clean(node.label), style="yellow")
        text.append(f"  {clean(node.sub)}", style="dim")
    else:
        text.append(clean(node.label), style="bold")
        text.append(f"  {clean(node.sub)}", style="dim")
    for badge in node.badges:
        text.append("  ")
        text.append(f"[{clean(badge)}]", style=_BADGE_STYLE.get(badge, "green"))
    sources = []
    for edge in sorted(incoming.get(node.id, []), key=lambda e: e.kind):
        if edge.kind in ("dep", "wait"):
            src = graph.node(edge.src)
            name = f"{src.label} ({src.ref})" if src.kind == "event" else (src.ref or src.label)
            if src.kind == "event" and edge.kind == "wait":
                name = "after " + name
            sources.append(name + (f" via {edge.label}" if edge.label else ""))
    if sources:
        text.append("  ⟵ ", style="dim")
        text.append(clean(", ".join(sources)), style="red" if node.critical else "")
    outgoing = [graph.node(e.dst) for e in graph.edges if e.src == node.id and e.kind == "method"]
    if outgoing:
        text.append("  ⟶ ", style="dim")
        text.append(clean(", ".join(n.label for n in outgoing)), style="blue")
    return text


def _cluster_text(cluster: GCluster) -> Text:
    style = "bold magenta" if cluster.loop else "bold"
    if cluster.kind == "function":
        style = "bold underline"
    return Text(clean(cluster.label), style=style)


def text_tree(graph: Graph) -> RenderableType:
    """The graph as a rich tree (clusters nest, nodes in drawing order), summary first."""
    clusters, nodes = graph.children()
    incoming: dict[str, list[GEdge]] = {}
    for e in graph.edges:
        incoming.setdefault(e.dst, []).append(e)
    heading = "compiled graph of" if graph.mode == "static" else "run"
    root = Tree(Text.assemble((f"{heading} ", "dim"), (clean(graph.title), "bold")))

    def fill(branch: Tree, cluster_id: str | None) -> None:
        items: list[tuple[float, int, GCluster | GNode]] = []
        for c in clusters.get(cluster_id, []):
            items.append((c.order, 1, c))
        for n in nodes.get(cluster_id, []):
            if cluster_id is None and n.kind == "component":
                continue
            items.append((n.order, 0, n))
        for _, _, item in sorted(items, key=lambda x: (x[0], x[1])):
            if isinstance(item, GCluster):
                fill(branch.add(_cluster_text(item)), item.id)
            else:
                branch.add(_node_text(graph, item, incoming))

    fill(root, None)
    components = [n for n in nodes.get(None, []) if n.kind == "component"]
    if components:
        comp_branch = root.add(Text("components", style="bold underline"))
        for n in components:
            comp_branch.add(_node_text(graph, n, incoming))
    parts: list[RenderableType] = [Text(clean(line), style="dim") for line in graph.summary]
    parts.append(root)
    return Group(*parts)


def render_text(graph: Graph, *, width: int = 120) -> str:
    """The text tree without colors (for files and tests)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, no_color=True,
                      emoji=False, highlight=False, soft_wrap=True)
    console.print(text_tree(graph))
    return buffer.getvalue()


# ---------------------------------------------------------------- shared


def _ids(graph: Graph) -> tuple[dict[str, str], dict[str, str]]:
    """Format-safe identifiers (``n0``, ``c0``) for nodes and clusters."""
    return ({n.id: f"n{i}" for i, n in enumerate(graph.nodes)},
            {c.id: f"c{i}" for i, c in enumerate(graph.clusters)})



def tooltip(details: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in details)


# ---------------------------------------------------------------- mermaid


_MERMAID_SHAPES = {
    "function": ('(["', '"])'), "component": ('[["', '"]]'), "wait": ('{{"', '"}}'),
    "call": ('["', '"]'), "event": ('["', '"]'),
}


def render_mermaid(graph: Graph) -> str:
    """A Mermaid ``flowchart``; every label is entity-escaped (see :func:`mermaid_escape`)."""
    node_ids, cluster_ids = _ids(graph)
    clusters, nodes = graph.children()
    out = ["flowchart TD"]

    def emit(cluster_id: str | None, depth: int) -> None:
        pad = "    " * depth
        for n in nodes.get(cluster_id, []):
            left, right = _MERMAID_SHAPES[n.kind]
            label = "<br/>".join(mermaid_escape(line) for line in label_lines(n))
            out.append(f"{pad}{node_ids[n.id]}{left}{label}{right}")
        for c in clusters.get(cluster_id, []):
            out.append(f'{pad}subgraph {cluster_ids[c.id]}["{mermaid_escape(c.label)}"]')
            out.append(f"{pad}    direction TB")
            emit(c.id, depth + 1)
            out.append(f"{pad}end")

    emit(None, 1)
    critical_links = []
    for i, e in enumerate(graph.edges):
        arrow = "-->" if e.kind == "dep" else "-.->"
        label = mermaid_escape(e.label)
        link = f"{arrow}|{label}|" if label else arrow
        out.append(f"    {node_ids[e.src]} {link} {node_ids[e.dst]}")
        if e.critical:
            critical_links.append(str(i))
    out += [
        "    classDef function fill:#e8eefc,stroke:#3a5bbf,stroke-width:1.5px;",
        "    classDef tool fill:#fff4e0,stroke:#b87400;",
        "    classDef agent fill:#fde8e8,stroke:#b83a3a;",
        "    classDef wait fill:#f3f3f3,stroke:#888,stroke-dasharray:3 3;",
        "    classDef loop stroke-width:3px,stroke:#8a3ab8;",
        "    classDef critical stroke:#d62728,stroke-width:3px;",
        "    classDef failed fill:#fdd;",
    ]
    groups: dict[str, list[str]] = {}
    for n in graph.nodes:
        for cls, on in (("function", n.kind == "function"), ("tool", n.role == "tool"), ("agent", n.role == "agent"),
                        ("wait", n.kind == "wait"), ("loop", n.loop), ("critical", n.critical), ("failed", n.failed)):
            if on:
                groups.setdefault(cls, []).append(node_ids[n.id])
    for cls, members in groups.items():
        out.append(f"    class {','.join(members)} {cls};")
    if critical_links:
        out.append(f"    linkStyle {','.join(critical_links)} stroke:#d62728,stroke-width:3px;")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- dot


_DOT_NODE: dict[str, dict[str, str]] = {
    "function": {"shape": "box", "style": '"rounded,filled,bold"', "fillcolor": '"#e8eefc"', "color": '"#3a5bbf"'},
    "tool": {"shape": "component", "style": "filled", "fillcolor": '"#fff4e0"', "color": '"#b87400"'},
    "agent": {"shape": "box3d", "style": "filled", "fillcolor": '"#fde8e8"', "color": '"#b83a3a"'},
    "component": {"shape": "component", "style": "filled", "fillcolor": '"#f0f0f0"'},
    "wait": {"shape": "hexagon", "style": "filled", "fillcolor": '"#f3f3f3"', "color": '"#888888"', "fontsize": "9"},
    "call": {"shape": "box", "style": '"rounded,filled"', "fillcolor": '"#ffffff"'},
    "event": {"shape": "box", "style": '"rounded,filled"', "fillcolor": '"#eef7ee"'},
}
_DOT_CLUSTER: dict[str, dict[str, str]] = {
    "function": {"style": '"rounded,filled"', "fillcolor": '"#f7f9ff"', "color": '"#3a5bbf"'},
    "request": {"style": '"rounded,filled"', "fillcolor": '"#f7fff7"', "color": '"#2f7d32"'},
    "inside": {"style": '"rounded,dashed"', "color": '"#2f7d32"'},
    "loop": {"style": '"rounded,dashed"', "color": '"#8a3ab8"'},
    "other": {"style": "rounded", "color": '"#999999"'},
}
_DOT_EDGE: dict[str, dict[str, str]] = {
    "dep": {},
    "wait": {"style": "dashed", "arrowhead": "odot", "color": '"#999999"'},
    "call": {"style": "dotted", "arrowhead": "empty", "color": '"#aaaaaa"'},
    "method": {"style": "dashed", "arrowhead": "empty", "color": '"#3a5bbf"'},
}
_CRITICAL = {"color": '"#d62728"', "penwidth": "2.5"}


def _dot_attrs(attrs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "]"


def _dot_tooltip(details: tuple[tuple[str, str], ...], fallback: str) -> str:
    return dot_lines([f"{k}: {v}" for k, v in details] or [fallback])


def _subtree_nodes(
    cluster_id: str, clusters: dict[str | None, list[GCluster]], nodes: dict[str | None, list[GNode]],
) -> list[GNode]:
    found = list(nodes.get(cluster_id, []))
    for c in clusters.get(cluster_id, []):
        found += _subtree_nodes(c.id, clusters, nodes)
    return found


def render_dot(graph: Graph) -> str:
    """Graphviz DOT; names are quoted escStrings, node ids are ``n<k>`` with the graph's id in ``id``."""
    node_ids, cluster_ids = _ids(graph)
    clusters, nodes = graph.children()
    title = ("compiled graph of " if graph.mode == "static" else "run ") + graph.title
    out = [
        "digraph nalarc {",
        (f'    graph [rankdir=TB, compound=true, newrank=true, fontname="Helvetica", fontsize=12, labelloc=t, '
         f"label={dot_quote(title)}];"),
        '    node [fontname="Helvetica", fontsize=10, color="#555555"];',
        '    edge [fontname="Helvetica", fontsize=9, color="#666666"];',
    ]

    def emit(cluster_id: str | None, depth: int) -> None:
        pad = "    " * depth
        for n in nodes.get(cluster_id, []):
            attrs = {"id": dot_quote(n.id), "label": dot_lines(label_lines(n)),
                     "tooltip": _dot_tooltip(n.details, n.label)}
            attrs.update(_DOT_NODE.get(n.role if n.kind == "component" else n.kind, _DOT_NODE["call"]))
            if n.failed:
                attrs["fillcolor"] = '"#ffdddd"'
            if n.loop:
                attrs.update(peripheries="2", color='"#8a3ab8"')
            if n.critical:
                attrs.update(_CRITICAL)
            out.append(f"{pad}{node_ids[n.id]} {_dot_attrs(attrs)};")
        for c in clusters.get(cluster_id, []):
            out.append(f"{pad}subgraph cluster_{cluster_ids[c.id]} {{")
            attrs = {"id": dot_quote(c.id), "label": dot_quote(c.label), "tooltip": _dot_tooltip(c.details, c.label)}
            attrs.update(_DOT_CLUSTER.get(c.kind, _DOT_CLUSTER["loop" if c.loop else "other"]))
            out.extend(f"{pad}    {k}={v};" for k, v in attrs.items())
            emit(c.id, depth + 1)
            out.append(f"{pad}}}")

    emit(None, 1)
    for e in graph.edges:
        attrs = dict(_DOT_EDGE[e.kind])
        if e.label:
            attrs["label"] = dot_quote(e.label)
        if e.critical:
            attrs.update(_CRITICAL)
        out.append(f"    {node_ids[e.src]} -> {node_ids[e.dst]}" + (f" {_dot_attrs(attrs)}" if attrs else "") + ";")
    # Layout only: a function's entry node above its first calls.
    fed = {e.dst for e in graph.edges if e.kind in ("dep", "wait")}
    for c in graph.clusters:
        if c.header is None:
            continue
        for n in _subtree_nodes(c.id, clusters, nodes):
            if n.id != c.header and n.id not in fed:
                out.append(f"    {node_ids[c.header]} -> {node_ids[n.id]} [style=invis];")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_unescape(quoted: str) -> str:
    """Inverse of :func:`dot_quote` for one line (used by tests and tools reading our DOT)."""
    body = quoted[1:-1] if len(quoted) >= 2 and quoted[0] == quoted[-1] == '"' else quoted
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)



