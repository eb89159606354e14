"""The HTML view in headless Chromium: the script draws every node, edge and timeline bar."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from graph_support import EXAMPLE_NAMES, dump_dom

from nalarc.graph import render_html, static_graph, trace_graph
from nalarc.graph._escape import clean
from nalarc.graph._layout import display_lines
from nalarc.ir import Program


class _Elements(HTMLParser):
    """Elements (tag, attributes) and the text inside each element, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[int] = []
        self.text: dict[int, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self.stack.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            index = self.stack.pop()
            if self.elements[index][0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text[self.stack[-1]] = self.text.get(self.stack[-1], "") + data

    def of(self, tag: str) -> list[tuple[dict[str, str], str]]:
        return [(attrs, self.text.get(i, "")) for i, (t, attrs) in enumerate(self.elements) if t == tag]


def _page(graph: Any, tmp_path: Path) -> tuple[str, _Elements]:
    page = tmp_path / "graph.html"
    source = render_html(graph)
    page.write_text(source, encoding="utf-8")
    dom = _Elements()
    dom.feed(dump_dom(page, tmp_path))
    return source, dom


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_static_html_draws_every_node(name: str, example_programs: dict[str, Program], tmp_path: Path) -> None:
    graph = static_graph(example_programs[name])
    source, dom = _page(graph, tmp_path)
    texts = [t for _, t in dom.of("text")]
    titles = [t for _, t in dom.of("title")]
    for node in graph.nodes:
        assert display_lines(node)[0] in texts, node.label
        assert any(t.startswith(clean(node.label)) for t in titles), node.label
    groups = {a.get("data-id") for a, _ in dom.of("g")}
    assert {n.id for n in graph.nodes} <= groups
    assert {c.id for c in graph.clusters} <= groups
    assert len([a for a, _ in dom.of("path") if "edge" in a.get("class", "")]) == len(graph.edges)
    # ×N call sites are drawn as loops, and the page is self-contained
    loops = [a for a, _ in dom.of("g") if re.search(r"\bnode\b.*\bloop\b", a.get("class", ""))]
    assert len(loops) == sum(1 for n in graph.nodes if n.loop)
    assert not re.search(r"""(src|href)=["']?https?:""", source)
    assert dom.of("h1")[0][1] == f"compiled graph of {name}"


def test_run_html_has_graph_and_timeline(example_traces: dict[str, Any], tmp_path: Path) -> None:
    trace = example_traces["support_router"]
    graph = trace_graph(trace, title="support_router run")
    _, dom = _page(graph, tmp_path)
    calls = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    nodes = [a for a, _ in dom.of("g") if "node" in a.get("class", "").split()]
    assert len(nodes) == len(calls)
    bars = [a for a, _ in dom.of("rect") if "bar" in a.get("class", "").split()]
    assert len(bars) == len(calls)
    assert all(float(a["width"]) > 0 for a in bars)
    lanes = [a for a, _ in dom.of("g") if a.get("class") == "lane"]
    assert len(lanes) == len({(e["pid"], e["tid"]) for e in calls})
    lane_names = {t for a, t in dom.of("text")} & {
        f"{e['args']['name']} · driver (in-process)" for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert len(lane_names) == len(lanes)
    critical = [a for a in nodes if "critical" in a["class"].split()]
    assert {a["data-id"] for a in critical} == {n.id for n in graph.nodes if n.critical}
    assert len(critical) == 2  # lookup_customer (or classify) -> TechAgent.handle
    assert any("critical path" in t for _, t in dom.of("li"))


def test_data_block_cannot_end_the_script() -> None:
    from nalarc.graph._escape import json_for_script

    text = json_for_script({"a": "</script><script>alert(1)</script>&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><script>alert(1)</script>&\u2028"}
