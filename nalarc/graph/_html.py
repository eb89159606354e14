"""One self-contained HTML file: an SVG graph with pan, zoom and hover details.

No network: the CSS and JavaScript are inline, and a Content-Security-Policy
forbids loading anything.  The layout is computed here (:mod:`._layout`), so
Graphviz is not needed.  The graph travels as JSON in a
``<script type="application/json">`` block (``<``, ``>`` and ``&`` escaped as
``\\u003c``...), and the script builds the DOM with ``textContent`` and
``setAttribute`` only: a name can never become markup.
"""

from __future__ import annotations

import html
from typing import Any

from ._escape import clean, json_for_script
from ._layout import Layout, display_lines, layout
from ._model import Graph, label_lines

_CSS = r"""
:root { --fg: #1d2330; --muted: #667085; --bg: #fbfcfe; --line: #98a2b3; --crit: #d62728; --loop: #8a3ab8; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 10px 16px; border-bottom: 1px solid #e4e7ec; background: #fff; display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 2px 0; }
#summary { margin: 0; padding-left: 18px; color: var(--muted); font-size: 12px; max-width: 70em; }
.controls { margin-left: auto; display: flex; gap: 4px; }
.controls button { font: inherit; padding: 2px 10px; border: 1px solid #d0d5dd; background: #fff; border-radius: 6px; cursor: pointer; }
.legend { font-size: 11px; color: var(--muted); padding: 4px 16px; }
.legend span { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 18px; height: 10px; border: 1.5px solid #555; border-radius: 3px; vertical-align: middle; margin-right: 4px; }
section.panel { position: relative; }
section.panel h2 { font-size: 13px; margin: 8px 16px 4px; color: var(--muted); }
svg.view { display: block; width: 100%; background: var(--bg); cursor: grab; user-select: none; touch-action: none; }
svg.view:active { cursor: grabbing; }
#graph { height: calc(100vh - 130px); min-height: 360px; }
body.dynamic #graph { height: calc(62vh - 120px); min-height: 300px; }
body.dynamic #timeline { height: auto; }
#timeline { height: 320px; border-top: 1px solid #e4e7ec; }
.cluster rect { fill: #f7f9ff; stroke: #b9c4e4; stroke-width: 1; }
.cluster.loop rect { fill: #fbf6ff; stroke: var(--loop); stroke-dasharray: 5 3; }
.cluster.request rect { fill: #f5fbf5; stroke: #8fc191; }
.cluster.inside rect { fill: #ffffff; stroke: #8fc191; stroke-dasharray: 4 3; }
.cluster text { font: bold 11px ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; fill: #475467; }
.node rect { fill: #fff; stroke: #667085; stroke-width: 1.2; }
.node.function rect { fill: #e8eefc; stroke: #3a5bbf; stroke-width: 1.6; }
.node.tool rect { fill: #fff4e0; stroke: #b87400; }
.node.agent rect { fill: #fde8e8; stroke: #b83a3a; }
.node.wait rect { fill: #f3f3f3; stroke: #98a2b3; stroke-dasharray: 3 2; }
.node.event rect { fill: #eef7ee; stroke: #4d8b50; }
.node.loop rect { stroke: var(--loop); stroke-width: 3; }
.node.critical rect { stroke: var(--crit); stroke-width: 3; }
.node.failed rect { fill: #ffdcdc; }
.node text { font: 11px ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; fill: var(--fg); }
.node text.sub, .node text.badges { fill: var(--muted); font-size: 10px; }
.node.critical text.badges { fill: var(--crit); }
.node.hl rect { stroke: #1570ef; stroke-width: 3.5; }
.edge { fill: none; stroke: var(--line); stroke-width: 1.3; }
.edge.wait { stroke-dasharray: 5 3; }
.edge.call, .edge.method { stroke: #c0c6d2; stroke-dasharray: 2 3; }
.edge.critical { stroke: var(--crit); stroke-width: 3; }
.edge.hl { stroke: #1570ef; stroke-width: 3; }
.elabel { font: 10px ui-monospace, Menlo, monospace; fill: var(--muted); paint-order: stroke; stroke: var(--bg); stroke-width: 3px; }
.lane text { font: 11px ui-monospace, Menlo, monospace; fill: #475467; }
.lane rect.band { fill: #f2f4f7; }
.bar { fill: #7fb77e; stroke: #4d8b50; }
.bar.critical { fill: #f28b82; stroke: var(--crit); }
.bar.failed { fill: #ffdcdc; stroke: #b83a3a; }
.bar.hl { stroke: #1570ef; stroke-width: 3; }
.axis { stroke: #d0d5dd; }
.axis-label { font: 10px ui-monospace, Menlo, monospace; fill: var(--muted); }
#tip { position: fixed; pointer-events: none; display: none; max-width: 520px; background: #101828; color: #f2f4f7; padding: 8px 10px; border-radius: 6px; font: 11px ui-monospace, Menlo, monospace; box-shadow: 0 4px 16px rgba(0,0,0,.25); z-index: 10; }
#tip table { border-collapse: collapse; }
#tip td { padding: 1px 6px 1px 0; vertical-align: top; white-space: pre-wrap; word-break: break-word; }
#tip td.k { color: #98a2b3; white-space: nowrap; }
#tip .t { font-weight: bold; margin-bottom: 4px; white-space: pre-wrap; word-break: break-word; }
"""

_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("nalarc-graph-data").textContent);

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, String(attrs[k])); } }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function text(name, attrs, content, parent) {
    var e = el(name, attrs, parent);
    e.textContent = content;
    return e;
  }

  document.getElementById("title").textContent = data.heading;
  var summary = document.getElementById("summary");
  data.summary.forEach(function (line) {
    var li = document.createElement("li");
    li.textContent = line;
    summary.appendChild(li);
  });

  // ------------------------------------------------------------ tooltips
  var tip = document.getElementById("tip");
  function showTip(evt, title, details) {
    tip.textContent = "";
    var t = document.createElement("div");
    t.className = "t";
    t.textContent = title;
    tip.appendChild(t);
    var table = document.createElement("table");
    details.forEach(function (kv) {
      var tr = document.createElement("tr");
      var k = document.createElement("td"); k.className = "k"; k.textContent = kv[0];
      var v = document.createElement("td"); v.textContent = kv[1];
      tr.appendChild(k); tr.appendChild(v); table.appendChild(tr);
    });
    tip.appendChild(table);
    tip.style.display = "block";
    moveTip(evt);
  }
  function moveTip(evt) {
    var x = evt.clientX + 14, y = evt.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth) { x = Math.max(4, evt.clientX - r.width - 14); }
    if (y + r.height > window.innerHeight) { y = Math.max(4, evt.clientY - r.height - 14); }
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  // ------------------------------------------------------------ pan and zoom
  function zoomable(svg, viewport, width, height, horizontalOnly, offsetX) {
    var s = { x: 0, y: 0, k: 1 };
    offsetX = offsetX || 0;
    function apply() {
      if (horizontalOnly) { viewport.onzoom(s.k, s.x); return; }
      viewport.setAttribute("transform", "translate(" + s.x + "," + s.y + ") scale(" + s.k + ")");
    }
    function fit() {
      var r = svg.getBoundingClientRect();
      var w = r.width || 800, h = r.height || 600;
      s.k = horizontalOnly ? 1 : Math.min(w / width, h / height, 1.5);
      if (!isFinite(s.k) || s.k <= 0) { s.k = 1; }
      s.x = horizontalOnly ? 0 : (w - width * s.k) / 2;
      s.y = horizontalOnly ? 0 : Math.max(0, (h - height * s.k) / 2);
      apply();
    }
    function zoomAt(px, py, factor) {
      var k = Math.min(Math.max(s.k * factor, 0.05), 40);
      s.x = px - (px - s.x) * (k / s.k);
      if (!horizontalOnly) { s.y = py - (py - s.y) * (k / s.k); }
      s.k = k;
      apply();
    }
    svg.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      var r = svg.getBoundingClientRect();
      zoomAt(evt.clientX - r.left - (horizontalOnly ? offsetX : 0), evt.clientY - r.top, Math.exp(-evt.deltaY * 0.0015));
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (evt) {
      drag = { x: evt.clientX, y: evt.clientY, sx: s.x, sy: s.y };
      if (svg.setPointerCapture) { svg.setPointerCapture(evt.pointerId); }
    });
    svg.addEventListener("pointermove", function (evt) {
      if (!drag) { return; }
      s.x = drag.sx + evt.clientX - drag.x;
      if (!horizontalOnly) { s.y = drag.sy + evt.clientY - drag.y; }
      apply();
    });
    function end() { drag = null; }
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", function (evt) {
      var r = svg.getBoundingClientRect();
      zoomAt(evt.clientX - r.left - (horizontalOnly ? offsetX : 0), evt.clientY - r.top, evt.shiftKey ? 0.5 : 2);
    });
    fit();
    return {
      fit: fit,
      zoom: function (factor) { var r = svg.getBoundingClientRect(); zoomAt(r.width / 2, r.height / 2, factor); }
    };
  }

  // ------------------------------------------------------------ the graph
  var svg = document.getElementById("graph");
  var defs = el("defs", {}, svg);
  [["arrow", "#98a2b3"], ["arrow-critical", "#d62728"], ["arrow-light", "#c0c6d2"], ["arrow-hl", "#1570ef"]].forEach(function (m) {
    var marker = el("marker", { id: m[0], viewBox: "0 0 10 10", refX: 9, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 9, markerHeight: 9, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: m[1] }, marker);
  });
  var viewport = el("g", { "class": "viewport" }, svg);
  var clusterLayer = el("g", { "class": "clusters" }, viewport);
  var edgeLayer = el("g", { "class": "edges" }, viewport);
  var nodeLayer = el("g", { "class": "nodes" }, viewport);

  data.clusters.forEach(function (c) {
    var g = el("g", { "class": "cluster " + c.kind + (c.loop ? " loop" : ""), "data-id": c.id }, clusterLayer);
    el("rect", { x: c.x, y: c.y, width: c.w, height: c.h, rx: 8 }, g);
    text("text", { x: c.x + 10, y: c.y + 15 }, c.label, g);
    g.addEventListener("mouseenter", function (evt) { showTip(evt, c.label, c.details); });
    g.addEventListener("mousemove", moveTip);
    g.addEventListener("mouseleave", hideTip);
  });

  var nodeEls = {}, edgesOf = {};
  data.edges.forEach(function (e, i) {
    var light = e.kind === "call" || e.kind === "method";
    var marker = e.critical ? "arrow-critical" : (light ? "arrow-light" : "arrow");
    var p = el("path", { "class": "edge " + e.kind + (e.critical ? " critical" : ""), d: e.d, "marker-end": "url(#" + marker + ")", "data-marker": marker }, edgeLayer);
    if (e.label) { text("text", { "class": "elabel", x: e.lx + 4, y: e.ly }, e.label, edgeLayer); }
    (edgesOf[e.src] = edgesOf[e.src] || []).push(p);
    (edgesOf[e.dst] = edgesOf[e.dst] || []).push(p);
  });

  function highlight(id, on) {
    var n = nodeEls[id];
    if (n) { n.classList.toggle("hl", on); }
    (edgesOf[id] || []).forEach(function (p) {
      p.classList.toggle("hl", on);
      p.setAttribute("marker-end", "url(#" + (on ? "arrow-hl" : p.getAttribute("data-marker")) + ")");
    });
    var b = barEls[id];
    if (b) { b.classList.toggle("hl", on); }
  }

  var barEls = {};
  data.nodes.forEach(function (n) {
    var cls = "node " + n.kind + (n.role ? " " + n.role : "") + (n.loop ? " loop" : "") + (n.critical ? " critical" : "") + (n.failed ? " failed" : "");
    var g = el("g", { "class": cls, "data-id": n.id, transform: "translate(" + n.x + "," + n.y + ")" }, nodeLayer);
    text("title", {}, n.full.join("\n"), g);
    el("rect", { width: n.w, height: n.h, rx: n.kind === "wait" ? 12 : 6 }, g);
    n.lines.forEach(function (line, i) {
      var kind = i === 0 ? "label" : (i === 1 && n.sub ? "sub" : "badges");
      text("text", { "class": kind, x: 10, y: 6 + 11.5 + i * 15 }, line, g);
    });
    nodeEls[n.key] = g;
    g.addEventListener("mouseenter", function (evt) { highlight(n.key, true); showTip(evt, n.full.join("\n"), n.details); });
    g.addEventListener("mousemove", moveTip);
    g.addEventListener("mouseleave", function () { highlight(n.key, false); hideTip(); });
  });

  var graphView = zoomable(svg, viewport, data.width, data.height, false);
  document.getElementById("fit").addEventListener("click", function () { graphView.fit(); });
  document.getElementById("zoom-in").addEventListener("click", function () { graphView.zoom(1.25); });
  document.getElementById("zoom-out").addEventListener("click", function () { graphView.zoom(0.8); });
  window.addEventListener("keydown", function (evt) {
    if (evt.key === "+" || evt.key === "=") { graphView.zoom(1.25); }
    else if (evt.key === "-") { graphView.zoom(0.8); }
    else if (evt.key === "0") { graphView.fit(); }
  });

  // ------------------------------------------------------------ the timeline
  if (data.timeline && data.timeline.bars.length) {
    var tl = data.timeline;
    document.getElementById("timeline-panel").hidden = false;
    var tsvg = document.getElementById("timeline");
    var LABEL = 260, ROW = 24, TOP = 24;
    var widthPx = Math.max((tsvg.getBoundingClientRect().width || 1000) - LABEL - 20, 200);
    var scale = widthPx / Math.max(tl.total, 0.001);
    var laneTop = {}, yAt = TOP;
    tl.lanes.forEach(function (lane) { laneTop[lane.id] = yAt; yAt += lane.rows * (ROW - 6) + 6; });
    var height = yAt + 10;
    tsvg.style.height = Math.min(Math.max(height, 120), 600) + "px";
    var laneIndex = {};
    var labels = el("g", { "class": "lanes" }, tsvg);
    var clip = el("clipPath", { id: "timeline-clip" }, el("defs", {}, tsvg));
    el("rect", { x: 0, y: 0, width: widthPx + 20, height: height + 10 }, clip);
    var plot = el("g", { "class": "plot", transform: "translate(" + LABEL + ",0)", "clip-path": "url(#timeline-clip)" }, tsvg);
    var inner = el("g", { "class": "viewport" }, plot);
    tl.lanes.forEach(function (lane, i) {
      laneIndex[lane.id] = i;
      var g = el("g", { "class": "lane", "data-id": lane.id }, labels);
      el("rect", { "class": "band", x: 0, y: laneTop[lane.id], width: LABEL - 6, height: lane.rows * (ROW - 6) + 2, rx: 3 }, g);
      text("text", { x: 6, y: laneTop[lane.id] + 14 }, lane.label, g);
    });
    var axis = el("g", {}, inner);
    var byNode = {};
    data.nodes.forEach(function (n) { byNode[n.key] = n; });
    var bars = tl.bars.map(function (b) {
      var n = byNode[b.node];
      var r = el("rect", {
        "class": "bar" + (n && n.critical ? " critical" : "") + (n && n.failed ? " failed" : ""), "data-id": n ? n.id : "",
        y: laneTop[b.lane] + 2 + b.row * (ROW - 6), height: ROW - 10, rx: 2
      }, inner);
      text("title", {}, n ? n.full.join("\n") : b.node, r);
      barEls[b.node] = r;
      r.addEventListener("mouseenter", function (evt) { highlight(b.node, true); if (n) { showTip(evt, n.full.join("\n"), n.details); } });
      r.addEventListener("mousemove", moveTip);
      r.addEventListener("mouseleave", function () { highlight(b.node, false); hideTip(); });
      return [b, r];
    });
    inner.onzoom = function (k, x0) {
      var px = scale * k;
      bars.forEach(function (br) {
        br[1].setAttribute("x", x0 + br[0].start * px);
        br[1].setAttribute("width", Math.max(br[0].duration * px, 1.5));
      });
      axis.textContent = "";
      var visible = widthPx / px, step = Math.pow(10, Math.floor(Math.log10(Math.max(visible / 8, 1e-6))));
      if (visible / step > 16) { step *= 5; } else if (visible / step > 8) { step *= 2; }
      var first = Math.max(0, Math.floor(-x0 / px / step) * step);
      for (var ms = first; ms <= tl.total + step && (ms * px + x0) <= widthPx + 50; ms += step) {
        var x = x0 + ms * px;
        if (x < -1) { continue; }
        el("line", { "class": "axis", x1: x, x2: x, y1: TOP - 6, y2: height }, axis);
        text("text", { "class": "axis-label", x: x + 2, y: 12 }, ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : (step < 1 ? ms.toFixed(1) : ms.toFixed(0)) + " ms", axis);
      }
    };
    zoomable(tsvg, inner, widthPx, height, true, LABEL);
    // the graph takes the room the timeline leaves
    var top = svg.getBoundingClientRect().top + window.scrollY;
    var room = window.innerHeight - top - tsvg.getBoundingClientRect().height - 48;
    svg.style.height = Math.max(300, room) + "px";
    graphView.fit();
  }
})();
"""

_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        "connect-src 'none'; base-uri 'none'; form-action 'none'")


def graph_data(graph: Graph, placed: Layout | None = None) -> dict[str, Any]:
    """What the page's script draws: the graph, laid out, as JSON-able data."""
    placed = placed if placed is not None else layout(graph)
    depth: dict[str, int] = {}
    parents = {c.id: c.parent for c in graph.clusters}

    def depth_of(cid: str) -> int:
        if cid not in depth:
            parent = parents.get(cid)
            depth[cid] = 0 if parent is None else depth_of(parent) + 1
        return depth[cid]

    clusters = sorted(graph.clusters, key=lambda c: depth_of(c.id))
    # The page links nodes, edges and bars by index keys; ids are shown cleaned.
    keys = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    heading = ("compiled graph of " if graph.mode == "static" else "run ") + graph.title
    data: dict[str, Any] = {
        "mode": graph.mode,
        "heading": clean(heading),
        "summary": [clean(line) for line in graph.summary],
        "width": round(placed.width, 1),
        "height": round(placed.height, 1),
        "clusters": [
            {"id": clean(c.id), "kind": c.kind, "label": clean(c.label), "loop": c.loop,
             "details": [[clean(k), clean(v)] for k, v in c.details],
             **_box(placed.clusters[c.id])}
            for c in clusters
        ],
        "nodes": [
            {"key": keys[n.id], "id": clean(n.id), "kind": n.kind, "role": n.role if n.role in ("tool", "agent", "workflow") else "",
             "lines": display_lines(n), "full": [clean(line) for line in label_lines(n)], "sub": bool(n.sub),
             "details": [[clean(k), clean(v)] for k, v in n.details],
             "loop": n.loop, "critical": n.critical, "failed": n.failed, **_box(placed.nodes[n.id])}
            for n in graph.nodes
        ],
        "edges": [
            {"src": keys[e.src], "dst": keys[e.dst], "kind": e.kind, "label": clean(e.label), "critical": e.critical,
             "d": d, "lx": round(lx, 1), "ly": round(ly, 1)}
            for e, (d, lx, ly) in zip(graph.edges, placed.paths)
        ],
        "timeline": None,
    }
    if graph.bars:
        data["timeline"] = {
            "lanes": [{"id": lane.id, "label": clean(lane.label), "rows": lane.rows} for lane in graph.lanes],
            "bars": [{"node": keys[b.node], "lane": b.lane, "start": round(b.start, 3), "duration": round(b.duration, 3),
                      "row": b.row} for b in graph.bars],
            "total": round(max(b.start + b.duration for b in graph.bars), 3),
        }
    return data



def _box(box: Any) -> dict[str, float]:
    return {"x": round(box.x, 1), "y": round(box.y, 1), "w": round(box.w, 1), "h": round(box.h, 1)}


def render_html(graph: Graph) -> str:
    """The page (a single file: nothing is fetched)."""
    heading = ("compiled graph of " if graph.mode == "static" else "run ") + graph.title
    if graph.mode == "static":
        legend = (
            '<span><i style="background:#e8eefc;border-color:#3a5bbf"></i>function</span>'
            '<span><i style="background:#fff4e0;border-color:#b87400"></i>tool</span>'
            '<span><i style="background:#fde8e8;border-color:#b83a3a"></i>agent</span>'
            '<span><i style="border-color:#8a3ab8;border-width:3px"></i>call in a loop (×N)</span>'
            '<span><i style="border-color:#d62728;border-width:3px"></i>estimated critical path</span>'
            '<span><i style="border-style:dashed"></i>wait (materialization)</span>'
        )
    else:
        legend = (
            '<span><i style="background:#eef7ee;border-color:#4d8b50"></i>call</span>'
            '<span><i style="background:#ffdcdc;border-color:#b83a3a"></i>failed call</span>'
            '<span><i style="border-color:#d62728;border-width:3px"></i>critical path</span>'
            "<span>solid arrow: depends on (its argument) · dashed: launched after waiting for (inferred) "
            "· dotted: made inside</span>"
        )
    legend += "<span>drag to pan · wheel or double-click to zoom · 0 fits · hover for details</span>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nalarc graph">
<title>{html.escape(clean(heading), quote=True)}</title>
<style>{_CSS}</style>
</head>
<body class="{graph.mode}">
<header>
<div><h1 id="title"></h1><ul id="summary"></ul></div>
<div class="controls"><button id="zoom-in" title="Zoom in (+)">+</button><button id="zoom-out" title="Zoom out (-)">&minus;</button><button id="fit" title="Fit (0)">Fit</button></div>
</header>
<div class="legend">{legend}</div>
<section class="panel" id="graph-panel"><svg id="graph" class="view" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="graph"></svg></section>
<section class="panel" id="timeline-panel" hidden><h2>Timeline: one lane per instance</h2><svg id="timeline" class="view" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="timeline"></svg></section>
<div id="tip" role="tooltip"></div>
<script type="application/json" id="nalarc-graph-data">{json_for_script(graph_data(graph))}</script>
<script>{_JS}</script>
</body>
</html>
"""
