"""Hostile names (quotes, brackets, ``<script>``, newlines, escapes) cannot break out of any format."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pydot
import pytest
from graph_support import EVIL, dump_dom

from nalarc.graph import (
    Graph,
    dot_unescape,
    render_dot,
    render_html,
    render_mermaid,
    render_text,
    static_graph,
    trace_graph,
)
from nalarc.graph._escape import clean, mermaid_escape
from nalarc.ir import Program

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")

SHOWN = clean(EVIL)


def graphs(program: Program, trace: dict[str, Any]) -> list[Graph]:
    return [static_graph(program, all_waits=True), trace_graph(trace, title=EVIL)]


def test_clean_leaves_one_visible_line() -> None:
    assert "\n" not in SHOWN and "\r" not in SHOWN and "\x1b" not in SHOWN and "\t" not in SHOWN
    assert "\\n├── injected" in SHOWN and "\\x1b[31m" in SHOWN


def test_text(evil_program: Program, evil_trace: dict[str, Any]) -> None:
    for graph in graphs(evil_program, evil_trace):
        out = render_text(graph, width=10_000)
        assert "\x1b" not in out and "\r" not in out
        # rich markup in a name is shown, not interpreted
        assert "[bold red]x[/]" in out
        assert "<script>alert(1)</script>" in out
        # the fake tree line never starts a line of its own
        for line in out.splitlines():
            if "injected" in line:
                assert "\\n├── injected" in line, line
        assert SHOWN in out


MERMAID_LINE = re.compile(
    r'^(flowchart TD'
    r'|\s*subgraph c\d+\["[^"<>\n]*"\]'
    r'|\s*direction TB'
    r'|\s*end'
    r'|\s*n\d+(\["[^"<>]*(<br/>[^"<>]*)*"\]|\(\["[^"<>]*(<br/>[^"<>]*)*"\]\)|\[\["[^"<>]*(<br/>[^"<>]*)*"\]\]'
    r'|\{\{"[^"<>]*(<br/>[^"<>]*)*"\}\})'
    r'|\s*n\d+ (-->|-\.->)(\|[^|"<>\[\]{}()]*\|)? n\d+'
    r'|\s*classDef \w+ [^"<>]*;'
    r'|\s*class [n\d,]+ \w+;'
    r'|\s*linkStyle [\d,]+ [^"<>]*;)$'
)


def _mermaid_decode(text: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)


def test_mermaid(evil_program: Program, evil_trace: dict[str, Any]) -> None:
    for graph in graphs(evil_program, evil_trace):
        out = render_mermaid(graph)
        for line in out.splitlines():
            assert MERMAID_LINE.match(line), line
        # labels decode back to the (cleaned) name
        labels = [_mermaid_decode(m) for m in re.findall(r'"([^"]*)"', out)]
        assert any(SHOWN in label for label in labels)
    assert mermaid_escape('a"b') == "a#34;b" and mermaid_escape("#35;") == "#35;35#59;"
    assert _mermaid_decode(mermaid_escape(EVIL)) == SHOWN


def _nodes(g: Any) -> list[Any]:
    found = [n for n in g.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    for sub in g.get_subgraphs():
        found += _nodes(sub)
    return found


def _subgraphs(g: Any) -> list[Any]:
    found = list(g.get_subgraphs())
    for sub in g.get_subgraphs():
        found += _subgraphs(sub)
    return found


def test_dot(evil_program: Program, evil_trace: dict[str, Any]) -> None:
    for graph in graphs(evil_program, evil_trace):
        dot = render_dot(graph)
        [parsed] = pydot.graph_from_dot_data(dot)
        nodes = _nodes(parsed)
        assert len(nodes) == len(graph.nodes)  # nothing injected, nothing lost
        by_id = {dot_unescape(n.get("id")): n for n in nodes}
        assert set(by_id) == {clean(n.id) for n in graph.nodes}
        for node in graph.nodes:
            parsed_lines = dot_unescape(by_id[clean(node.id)].get("label")).split("\n")
            assert parsed_lines[0] == clean(node.label)  # labels round-trip
        labels = [dot_unescape(s.get("label")) for s in _subgraphs(parsed)]
        assert sorted(labels) == sorted(clean(c.label) for c in graph.clusters)
        assert len(parsed.get_edges()) >= len(graph.edges)
        if shutil.which("dot"):
            proc = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60, check=False)
            assert proc.returncode == 0, proc.stderr
            root = ET.fromstring(proc.stdout)
            tags = {el.tag.rpartition("}")[2] for el in root.iter()}
            assert "script" not in tags and "img" not in tags
            texts = " ".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
            assert "<script>alert(1)</script>" in texts


class _DOM(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_html_source(evil_program: Program, evil_trace: dict[str, Any]) -> None:
    for graph in graphs(evil_program, evil_trace):
        page = render_html(graph)
        assert page.count("<script") == 2 and page.count("</script>") == 2
        assert "<img" not in page and "onerror=alert" not in page.replace("onerror=alert(2)", "")
        dom = _DOM()
        dom.feed(page)
        assert [t for t, _ in dom.tags if t == "script"] == ["script", "script"]
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in page


@pytest.mark.parametrize("which", ["static", "dynamic"])
def test_html_dom_has_no_injected_element(
    which: str, evil_program: Program, evil_trace: dict[str, Any], tmp_path: Path,
) -> None:
    graph = graphs(evil_program, evil_trace)[0 if which == "static" else 1]
    page = tmp_path / "evil.html"
    page.write_text(render_html(graph), encoding="utf-8")
    dom = _DOM()
    dom.feed(dump_dom(page, tmp_path))
    tags = [t for t, _ in dom.tags]
    assert tags.count("script") == 2
    assert "img" not in tags
    assert not any(k.startswith("on") for _, attrs in dom.tags for k in attrs)
    text = "".join(dom.texts)
    # the names were drawn, as text
    assert "<script>alert(1)</script>" in text
    assert "[bold red]x[/]" in text
    # the script ran: every node is in the DOM
    drawn = {attrs.get("data-id") for t, attrs in dom.tags if t == "g"}
    assert {clean(n.id) for n in graph.nodes} <= drawn
