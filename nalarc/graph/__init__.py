"""``nalarc graph``: the compiled graph of an app, and what a run actually did.

* :func:`static_graph`: from the IR (a :class:`~nalarc.ir.Program`): workflows,
  components, call sites (×N in loops), dependencies, waits, and the control
  regions as clusters.
* :func:`trace_graph`: from a run trace (``--trace-out``): the future DAG,
  timings, the critical path, and a timeline per instance.
* Renderers: :func:`render_text` / :func:`text_tree` (rich), :func:`render_mermaid`,
  :func:`render_dot`, :func:`render_html` (self-contained, no Graphviz needed),
  :func:`render_image` (svg/png through Graphviz ``dot``).

Depends on :mod:`nalarc.ir` only.
"""

from __future__ import annotations

from ._dynamic import TraceError as TraceError
from ._dynamic import load_trace as load_trace
from ._dynamic import trace_graph as trace_graph
from ._graphviz import GraphvizFailed as GraphvizFailed
from ._graphviz import GraphvizNotFound as GraphvizNotFound
from ._graphviz import find_dot as find_dot
from ._graphviz import render_image as render_image
from ._html import render_html as render_html
from ._layout import layout as layout
from ._model import Bar as Bar
from ._model import GCluster as GCluster
from ._model import GEdge as GEdge
from ._model import GNode as GNode
from ._model import Graph as Graph
from ._model import Lane as Lane
from ._render import dot_unescape as dot_unescape
from ._render import render_dot as render_dot
from ._render import render_mermaid as render_mermaid
from ._render import render_text as render_text
from ._render import text_tree as text_tree
from ._static import static_graph as static_graph

#: Every ``--format``; the text ones can go to stdout.
FORMATS = ("text", "mermaid", "dot", "svg", "png", "html")
TEXT_FORMATS = ("text", "mermaid", "dot")

__all__ = [
    "FORMATS",
    "TEXT_FORMATS",
    "Bar",
    "GCluster",
    "GEdge",
    "GNode",
    "Graph",
    "GraphvizFailed",
    "GraphvizNotFound",
    "Lane",
    "TraceError",
    "dot_unescape",
    "find_dot",
    "layout",
    "load_trace",
    "render_dot",
    "render_html",
    "render_image",
    "render_mermaid",
    "render_text",
    "static_graph",
    "text_tree",
    "trace_graph",
]
