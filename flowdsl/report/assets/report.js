// Draws the run report's DAG (layout by dagre) and Gantt chart (scales and axis by d3)
// from the JSON data embedded in the page.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("flowdsl-data").textContent);
  const COLOURS = JSON.parse(document.getElementById("flowdsl-colours").textContent);
  const colour = (status) => COLOURS[status] || COLOURS.pending;
  const fmt = (seconds) => seconds < 1 ? (seconds * 1000).toFixed(2) + " ms" : seconds.toFixed(3) + " s";

  function drawDag() {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 10, ranksep: 36, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    const known = new Set(data.tasks.map((t) => t.id));
    for (const task of data.tasks) {
      g.setNode(task.id, { width: Math.min(240, 16 + 7 * task.id.length), height: 24, task: task });
    }
    for (const task of data.tasks) {
      for (const dep of task.deps) if (known.has(dep)) g.setEdge(dep, task.id);
    }
    dagre.layout(g);
    const size = g.graph();
    const svg = d3.select("#dag").append("svg")
      .attr("width", Math.max(size.width, 10)).attr("height", Math.max(size.height, 10));
    svg.append("defs").append("marker").attr("id", "arrow").attr("viewBox", "0 0 10 10")
      .attr("refX", 9).attr("refY", 5).attr("markerWidth", 6).attr("markerHeight", 6)
      .attr("orient", "auto").append("path").attr("d", "M0,0L10,5L0,10z").attr("fill", "#8c959f");
    const line = d3.line().x((p) => p.x).y((p) => p.y).curve(d3.curveBasis);
    svg.append("g").selectAll("path").data(g.edges()).join("path")
      .attr("class", "dag-edge").attr("data-from", (e) => e.v).attr("data-to", (e) => e.w)
      .attr("d", (e) => line(g.edge(e).points))
      .attr("marker-end", "url(#arrow)");
    const nodes = svg.append("g").selectAll("g").data(g.nodes().map((id) => g.node(id))).join("g")
      .attr("class", (n) => "dag-node status-" + n.task.status)
      .attr("data-task-id", (n) => n.task.id).attr("data-status", (n) => n.task.status)
      .attr("transform", (n) => `translate(${n.x - n.width / 2},${n.y - n.height / 2})`);
    nodes.append("title").text((n) => `${n.task.id}: ${n.task.status}` +
      (n.task.reason ? ` (${n.task.reason})` : "") + (n.task.error ? `\n${n.task.error}` : ""));
    nodes.append("rect").attr("width", (n) => n.width).attr("height", (n) => n.height)
      .attr("rx", 5).attr("fill", (n) => colour(n.task.status));
    nodes.append("text").attr("x", 8).attr("y", 16)
      .text((n) => n.task.id.length > 32 ? n.task.id.slice(0, 31) + "\u2026" : n.task.id);
  }

  function drawGantt() {
    const bars = data.bars.filter((b) => b.start !== null);
    const root = d3.select("#gantt");
    if (!bars.length) { root.append("p").attr("class", "note").text("No attempt ran."); return; }
    const origin = d3.min(bars, (b) => b.start);
    const last = Math.max(d3.max(bars, (b) => b.end === null ? b.start : b.end),
      data.ended === null ? origin : data.ended);
    const rows = [];
    const seen = new Map();
    for (const bar of bars.slice().sort((a, b) => a.start - b.start)) {
      const key = bar.index === null ? bar.task : `${bar.task}[${bar.index}]`;
      if (!seen.has(key)) { seen.set(key, rows.length); rows.push(key); }
    }
    const label = Math.min(260, 20 + 7 * d3.max(rows, (r) => r.length));
    const width = Math.max(600, root.node().clientWidth - label - 30);
    const rowHeight = 18;
    const top = 24;
    const x = d3.scaleLinear().domain([0, Math.max(last - origin, 1e-6)]).range([0, width]);
    const svg = root.append("svg").attr("width", label + width + 20)
      .attr("height", top + rows.length * rowHeight + 6);
    const plot = svg.append("g").attr("transform", `translate(${label},${top})`);
    plot.append("g").attr("class", "gantt-grid")
      .call(d3.axisTop(x).ticks(8).tickSize(-rows.length * rowHeight).tickFormat(fmt));
    svg.append("g").selectAll("text").data(rows).join("text").attr("class", "gantt-label")
      .attr("x", 6).attr("y", (r, i) => top + i * rowHeight + 13)
      .text((r) => r.length > 36 ? r.slice(0, 35) + "\u2026" : r);
    const rowOf = (b) => seen.get(b.index === null ? b.task : `${b.task}[${b.index}]`);
    const end = (b) => b.end === null ? last : b.end;
    const waits = [];
    const byRow = d3.group(bars, rowOf);
    for (const list of byRow.values()) {
      list.sort((a, b) => a.attempt - b.attempt);
      for (let i = 1; i < list.length; i++) waits.push([list[i - 1], list[i]]);
    }
    plot.append("g").selectAll("line").data(waits).join("line").attr("class", "gantt-wait")
      .attr("x1", (w) => x(end(w[0]) - origin)).attr("x2", (w) => x(w[1].start - origin))
      .attr("y1", (w) => rowOf(w[0]) * rowHeight + 9).attr("y2", (w) => rowOf(w[0]) * rowHeight + 9)
      .append("title").text((w) => `${w[0].task}: wait ${fmt(w[1].start - end(w[0]))} before attempt ${w[1].attempt}`);
    const rects = plot.append("g").selectAll("rect").data(bars).join("rect")
      .attr("class", (b) => "gantt-bar status-" + b.status)
      .attr("data-task-id", (b) => b.task).attr("data-attempt", (b) => b.attempt)
      .attr("data-status", (b) => b.status)
      .attr("x", (b) => x(b.start - origin)).attr("y", (b) => rowOf(b) * rowHeight + 3)
      .attr("width", (b) => Math.max(2, x(end(b) - origin) - x(b.start - origin)))
      .attr("height", rowHeight - 6).attr("rx", 2).attr("fill", (b) => colour(b.status));
    rects.filter((b) => b.index !== null).attr("data-index", (b) => b.index);
    rects.append("title").text((b) => `${b.task}${b.index === null ? "" : "[" + b.index + "]"} ` +
      `attempt ${b.attempt}: ${b.status}, ${fmt(end(b) - b.start)}` + (b.error ? `\n${b.error}` : ""));
  }

  // The table, errors, inputs and summary are plain HTML; the Gantt chart comes next; the
  // graph's layout (the slow part past a few hundred tasks) runs after the page has painted.
  const mark = (name) => document.body.setAttribute(name, String(Math.round(performance.now())));
  drawGantt();
  mark("data-gantt-ms");
  requestAnimationFrame(() => setTimeout(() => {
    drawDag();
    mark("data-dag-ms");
    document.body.setAttribute("data-drawn", "true");
  }, 0));
})();
