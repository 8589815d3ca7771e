"""One self-contained HTML file from a report's data: every script and style inline.

The task table, the errors, the inputs and the summary are HTML written here (readable with
scripts off); the DAG (laid out by dagre) and the Gantt chart (scales and axis by d3) are drawn
by ``assets/report.js`` from the data embedded as JSON. A Content-Security-Policy forbids any
network access, so the file opens the same offline.
"""

from __future__ import annotations

import html
import os
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .model import Report

__all__ = ["STATUS_COLOURS", "render", "write"]

#: Fill colour of a DAG node and of a Gantt bar, by status value.
STATUS_COLOURS: dict[str, str] = {
    "completed": "#2e9d5b",
    "failed": "#d64545",
    "skipped": "#9aa0a6",
    "cancelled": "#e0a030",
    "running": "#3b78d8",
    "retrying": "#8e63ce",
    "pending": "#d7dbe0",
    "abandoned": "#7f5539",
}

_LIBRARIES = ("d3.min.js", "dagre.min.js")
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:")


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` can close it early)."""
    text = json.dumps(value, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value * 1000:.3f} ms" if value < 1 else f"{value:.3f} s"
    return html.escape(str(value))


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, STATUS_COLOURS["pending"])
    return (f'<span class="badge" style="background:{colour}">{html.escape(status)}</span>')


def _table(report: Report) -> str:
    rows = []
    for task in report["tasks"]:
        reason = task["reason"] or task["error"] or ""
        rows.append(
            f'<tr data-task-id="{html.escape(task["id"], quote=True)}">'
            f'<td class="id">{html.escape(task["id"])}</td><td>{_badge(task["status"])}</td>'
            f'<td class="num">{task["attempts"]}</td>'
            f'<td class="num">{_seconds(task["duration"])}</td>'
            f"<td>{html.escape(reason)}</td></tr>")
    return (
        '<table id="tasks"><thead><tr><th>task</th><th>status</th><th>attempts</th>'
        "<th>duration</th><th>reason</th></tr></thead><tbody>" + "".join(rows)
        + "</tbody></table>")


def _errors(report: Report) -> str:
    parts = []
    for task in report["tasks"]:
        if task["error"] is None and task["traceback"] is None:
            continue
        parts.append(
            f'<div class="error" data-task-id="{html.escape(task["id"], quote=True)}">'
            f'<h3>{html.escape(task["id"])}: {html.escape(task["error"] or "")}</h3>'
            f'<pre>{html.escape(task["traceback"] or task["error"] or "")}</pre></div>')
    return "".join(parts) or "<p>No task failed.</p>"


def _mapping(values: dict[str, Any], element_id: str) -> str:
    if not values:
        return f'<p id="{element_id}">None.</p>'
    rows = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_plain(value))}</td></tr>"
        for key, value in values.items())
    return f'<table id="{element_id}" class="kv">{rows}</table>'


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render(report: Report) -> str:
    """The report as one HTML document."""
    title = f"flowdsl run {report['run_id']} of {report['flow']}"
    libraries = "\n".join(f"<script>{_asset(name)}</script>" for name in _LIBRARIES)
    edges_note = "" if report["edges_known"] else (
        '<p class="note">This run was recorded before the run store kept the plan\'s '
        "dependencies: tasks are shown without edges (give the flow to draw them: "
        "<code>flowdsl report RUN_ID --target FLOW</code>).</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{_asset("report.css")}</style>
</head><body>
<header><h1>{html.escape(report["flow"])} <span class="run-id">{html.escape(report["run_id"])}</span>
{_badge(report["status"])}</h1></header>
<section><h2>Tasks</h2>{_table(report)}</section>
<section><h2>Graph</h2>{edges_note}<div id="dag" class="scroll"></div></section>
<section><h2>Timeline</h2><p class="note">One bar per attempt; a dashed line is a retry
wait.</p><div id="gantt" class="scroll"></div></section>
<section><h2>Errors</h2><div id="errors">{_errors(report)}</div></section>
<section class="pair"><div><h2>Inputs</h2>{_mapping(report["inputs"], "inputs")}</div>
<div><h2>Summary</h2>{_mapping(report["summary"], "summary")}</div></section>
<script type="application/json" id="flowdsl-data">{_script_json(report)}</script>
<script type="application/json" id="flowdsl-colours">{_script_json(STATUS_COLOURS)}</script>
{libraries}
<script>{_asset("report.js")}</script>
</body></html>
"""


def write(text: str, path: str | os.PathLike[str] | None) -> str:
    """Write ``text`` to ``path`` when one is given; return the text."""
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
