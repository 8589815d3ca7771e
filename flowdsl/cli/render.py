"""How the commands show things: tables (rich), graphs (Mermaid, DOT), durations, times.

Everything here formats values the library computed; nothing decides anything.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from ..compiling.plan import Plan
from ..status import Priority

__all__ = [
    "duration", "timestamp", "priority", "table", "task_rows", "plan_table", "runs_table",
    "counts", "mermaid", "dot", "summary_lines",
]


def duration(seconds: float | None) -> str:
    """``0.0000123`` -> ``"12.3 µs"``; ``None`` -> ``"-"``; not a number -> its text."""
    if seconds is None:
        return "-"
    if not isinstance(seconds, (int, float)) or seconds != seconds:
        return printable(str(seconds))
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def timestamp(epoch: float | None) -> str:
    """Epoch seconds as local time, ``2024-05-01 12:00:00``; ``None`` -> ``"-"``."""
    if epoch is None:
        return "-"
    try:
        return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return printable(str(epoch))


def priority(value: int) -> str:
    """``2`` -> ``"2 HIGH"``; an int outside the named levels stays a number."""
    try:
        return f"{value} {Priority(value).name}"
    except ValueError:
        return str(value)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with terminal control characters (escape sequences, bells, carriage returns,
    C1 codes) shown as ``\\x1b``-style escapes, so stored text cannot drive the terminal;
    tabs stay, newlines too when ``newlines``, else they are shown as ``\\n``."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if newlines else text.replace("\n", "\\n")


def _cell(value: Any) -> Text:
    # Text, not str: rich would read "[...]" in an error message as markup
    if isinstance(value, Text):
        return value
    return Text("-" if value is None else printable(str(value)))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          wrap: Sequence[str] = ()) -> Table:
    """A plain table; columns named in ``wrap`` fold long text, the others never wrap."""
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, title=title, title_justify="left",
                 pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=column not in wrap)
    for row in rows:
        grid.add_row(*(_cell(value) for value in row))
    return grid


_STATUS_STYLE = {
    "completed": "green", "succeeded": "green", "failed": "bold red", "skipped": "yellow",
    "cancelled": "yellow", "running": "cyan", "retrying": "cyan",
}


def status(value: str) -> Text:
    """A status value, coloured on a terminal."""
    return Text(printable(value), style=_STATUS_STYLE.get(value, ""))


def task_rows(tasks: Iterable[tuple[str, str, int, float | None, str | None]]) -> Table:
    """The per-task table of a run: id, status, attempts, duration, reason or error."""
    return table(
        ("task", "status", "attempts", "duration", "reason / error"),
        ((task_id, status(state), attempts, duration(seconds), note or "")
         for task_id, state, attempts, seconds, note in tasks),
        wrap=("reason / error",),
    )


def _dependencies(step: Any) -> str:
    inferred = getattr(step, "inferred", None) or {}
    return ", ".join(f"{dep} (inferred from key {inferred[dep]})" if dep in inferred else dep
                     for dep in step.dependencies) or "-"


def _predicate_name(step: Any) -> str:
    name = getattr(step.run_if, "__name__", None) or type(step.run_if).__name__
    return "a lambda" if name == "<lambda>" else name


def marks(step: Any) -> list[str]:
    """What sets a step apart: mapped, conditional, trigger rule, included, gathering."""
    notes = []
    if (getattr(step, "map_over", None) or ()):
        notes.append("mapped over " + ", ".join(step.map_over))
    if getattr(step, "run_if", None) is not None:
        notes.append(f"conditional (run_if {_predicate_name(step)})")
    if getattr(step, "trigger", "all_succeeded") != "all_succeeded":
        notes.append(f"trigger {step.trigger}")
    if getattr(step, "gathers", False):
        notes.append(f"gathers sub-flow {step.id!r}")
    elif getattr(step, "included", ()):
        notes.append(f"included ({step.included[0]})")
    return notes


def plan_table(plan: Plan) -> Table:
    """The ordered plan: one row per step; inferred edges and mapped, conditional and
    included tasks are marked."""
    def listed(values: Sequence[str]) -> str:
        return ", ".join(values) or "-"

    return table(
        ("#", "task", "priority", "dependencies", "requires", "produces", "retries", "timeout",
         "notes"),
        ((step.position + 1, step.id, priority(step.priority), _dependencies(step),
          listed(step.requires), listed(step.produces), step.retries,
          "-" if step.timeout is None else f"{step.timeout:g} s", "; ".join(marks(step)) or "-")
         for step in plan.steps),
        wrap=("dependencies", "requires", "produces", "notes"),
    )


def schedule_table(explained: Mapping[str, Any]) -> Table:
    """What adaptive scheduling expects per task: history size, expected duration, critical path."""
    return table(
        ("task", "priority", "runs seen", "expected", "critical path"),
        ((task_id, priority(info["priority"]), len(info["history"]), duration(info["expected"]),
          duration(info["critical_path"]))
         for task_id, info in explained["tasks"].items()),
    )


def elapsed(started: Any, ended: Any) -> str:
    """The time from ``started`` to ``ended`` (epoch seconds), ``"-"`` when not both known."""
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        return duration(ended - started)
    return "-"


def counts(by_status: Mapping[str, int] | None) -> str:
    """``{"completed": 4, "failed": 1}`` -> ``"4 completed, 1 failed"``."""
    return ", ".join(f"{n} {printable(str(state))}"
                     for state, n in (by_status or {}).items() if n) or "-"


def runs_table(runs: Iterable[Mapping[str, Any]]) -> Table:
    """The run history, newest first."""
    def took(run: Mapping[str, Any]) -> str:
        return elapsed(run.get("started"), run.get("ended"))

    return table(
        ("run id", "flow", "status", "started", "duration", "tasks"),
        ((run["run_id"], run.get("flow"), status(str(run.get("status"))),
          timestamp(run.get("started")), took(run), counts(run.get("counts")))
         for run in runs),
        wrap=("tasks",),
    )


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary of a run, as a person reads it."""
    line = (f"{summary['successful_tasks']}/{summary['total_tasks']} tasks succeeded, "
            f"{summary['failed_tasks']} failed, {summary.get('skipped_tasks', 0)} skipped, "
            f"{summary.get('cancelled_tasks', 0)} cancelled")
    reused = []
    if summary.get("restored_tasks"):
        reused.append(f"{summary['restored_tasks']} restored from the run store")
    if summary.get("cached_tasks"):
        reused.append(f"{summary['cached_tasks']} from the cache")
    if reused:
        line += f" ({', '.join(reused)})"
    overhead = summary["orchestration_overhead_per_task"]
    timing = f"time in tasks {duration(summary['total_execution_time'])}, "
    if "store_time" in summary:
        ran = (summary["successful_tasks"] - summary.get("restored_tasks", 0)
               - summary.get("cached_tasks", 0) + summary["failed_tasks"])
        store = summary["store_time"] / ran if ran else 0.0
        timing += (f"overhead {duration(max(0.0, overhead - store))} per task without the "
                   f"store, store {duration(store)} per task")
    else:
        timing += f"overhead {duration(overhead)} per task"
    timing += f", context efficiency {summary['context_efficiency']:.4f}"
    return [line, timing]


def as_json(value: Any) -> str:
    """JSON for stdout; what JSON cannot hold is shown as its ``str``."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


# -- graphs -----------------------------------------------------------------------------------
# words Mermaid's flowchart parser reads as keywords, so they cannot be bare node ids
_MERMAID_WORDS = frozenset({"end", "graph", "flowchart", "subgraph", "direction", "click",
                            "style", "class", "classdef", "linkstyle", "default", "call",
                            "href"})
_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _label_lines(step: Any) -> list[str]:
    lines = [step.id, f"priority {priority(step.priority)}"]
    if (getattr(step, "map_over", None) or ()):
        lines.append("map over " + ", ".join(step.map_over))
    if getattr(step, "run_if", None) is not None:
        lines.append(f"if {_predicate_name(step)}")
    if getattr(step, "trigger", "all_succeeded") != "all_succeeded":
        lines.append(f"trigger {step.trigger}")
    return lines


def _groups(plan: Plan) -> dict[str, list[Any]]:
    """Included steps by their outermost include prefix (the gathering task with them)."""
    groups: dict[str, list[Any]] = {}
    for step in plan.steps:
        included = getattr(step, "included", ())
        if included:
            groups.setdefault(included[0], []).append(step)
    return groups


def _edges(plan: Plan) -> list[tuple[str, str, str | None]]:
    """(upstream, downstream, key it was inferred from or None) per edge."""
    return [(upstream, step.id, (getattr(step, "inferred", None) or {}).get(upstream))
            for step in plan.steps for upstream in step.dependencies]


def mermaid(plan: Plan) -> str:
    """The plan's DAG as a Mermaid flowchart: nodes labelled with id and priority, edges
    upstream --> downstream (inferred ones dashed, labelled with their key), a mapped task
    as a stacked node, included tasks in a subgraph per include, critical tasks styled apart."""
    names = {}
    for step in plan.steps:
        bare = _BARE_ID.match(step.id) and step.id.lower() not in _MERMAID_WORDS
        names[step.id] = step.id if bare else f"task{step.position}"

    def node(step: Any) -> str:
        label = "<br/>".join(_label_lines(step)).replace('"', "#quot;")
        style = ":::critical" if step.critical else ""
        if (getattr(step, "map_over", None) or ()):  # stacked rectangle: many elements (Mermaid 11.3+)
            # (styled by a `class` line below: `:::` does not follow this syntax)
            return f'{names[step.id]}@{{ shape: processes, label: "{label}" }}'
        if getattr(step, "run_if", None) is not None:  # a hexagon: decided at run time
            return f'{names[step.id]}{{{{"{label}"}}}}' + style
        return f'{names[step.id]}["{label}"]' + style

    lines = ["flowchart TD"]
    groups = _groups(plan)
    grouped = {step.id for steps in groups.values() for step in steps}
    for step in plan.steps:
        if step.id not in grouped:
            lines.append("    " + node(step))
    for n, (prefix, steps) in enumerate(groups.items()):
        title = f"included: {prefix}".replace('"', "#quot;")
        lines.append(f'    subgraph include{n}["{title}"]')
        lines.extend("        " + node(step) for step in steps)
        lines.append("    end")
    for upstream, downstream, key in _edges(plan):
        if key is None:
            lines.append(f"    {names[upstream]} --> {names[downstream]}")
        else:
            text = f"key {key}".replace('"', "#quot;")
            lines.append(f'    {names[upstream]} -. "{text}" .-> {names[downstream]}')
    stacked = [names[step.id] for step in plan.steps
               if step.critical and (getattr(step, "map_over", None) or ())]
    if stacked:
        lines.append(f"    class {','.join(stacked)} critical")
    if any(step.critical for step in plan.steps):
        lines.append("    classDef critical stroke:#c00,stroke-width:2px")
    return "\n".join(lines)


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(plan: Plan) -> str:
    """The plan's DAG in Graphviz DOT: nodes labelled with id and priority, edges
    upstream -> downstream (inferred ones dashed, labelled with their key), a mapped task as
    a stacked box (box3d), a conditional one as a hexagon, included tasks in a cluster per
    include, critical tasks drawn bold."""
    lines = [f"digraph {_dot_id(plan.flow)} {{", "    rankdir=TB;", "    node [shape=box];"]

    def node(step: Any, indent: str) -> str:
        label = _dot_id("\n".join(_label_lines(step)))
        extra = ", style=bold, color=red" if step.critical else ""
        if (getattr(step, "map_over", None) or ()):
            extra += ", shape=box3d"
        elif getattr(step, "run_if", None) is not None:
            extra += ", shape=hexagon"
        return f"{indent}{_dot_id(step.id)} [label={label}{extra}];"

    groups = _groups(plan)
    grouped = {step.id for steps in groups.values() for step in steps}
    lines.extend(node(step, "    ") for step in plan.steps if step.id not in grouped)
    for prefix, steps in groups.items():
        lines.append(f"    subgraph {_dot_id('cluster_' + prefix)} {{")
        lines.append(f"        label={_dot_id('included: ' + prefix)}; style=dashed;")
        lines.extend(node(step, "        ") for step in steps)
        lines.append("    }")
    for upstream, downstream, key in _edges(plan):
        extra = "" if key is None else f" [style=dashed, label={_dot_id('key ' + key)}]"
        lines.append(f"    {_dot_id(upstream)} -> {_dot_id(downstream)}{extra};")
    lines.append("}")
    return "\n".join(lines)


def error_text(error: BaseException) -> str:
    """``ValueError: boom``, as the store records it."""
    return f"{type(error).__name__}: {error}"


def print_record(console: Any, record: Mapping[str, Any]) -> None:
    """One stored run as `flowdsl show` prints it: tasks in plan order, each with its reason
    or error; every stored text escaped (it may hold terminal control sequences)."""
    started, ended = record.get("started"), record.get("ended")

    def say(text: str) -> None:
        console.print(printable(text, newlines=True), markup=False, highlight=False,
                      soft_wrap=True)

    say(f"run {record['run_id']} of flow {record.get('flow')!r}: {record.get('status')}")
    say(f"started {timestamp(started)}, ended {timestamp(ended)} ({elapsed(started, ended)})")
    inputs = record.get("inputs")
    if inputs:
        say("inputs: " + json.dumps(inputs, default=str, ensure_ascii=False))
    sessions = record.get("sessions") or []
    if sessions:
        emit(console, table(
            ("session", "pid", "host", "started", "ended", "status"),
            ((n, s.get("pid"), s.get("host"), timestamp(s.get("started")),
              timestamp(s.get("ended")), status(str(s.get("status"))))
             for n, s in enumerate(sessions, 1))))
    tasks = record.get("tasks") or {}
    emit(console, table(
        ("task", "status", "attempts", "duration", "reason / error"),
        ((task_id, status(str(task.get("status"))), task.get("attempts"),
          duration(task.get("duration")), task.get("error") or task.get("reason") or "")
         for task_id, task in tasks.items()),
        wrap=("reason / error",)))
    for task_id, task in tasks.items():
        if task.get("status") == "failed":
            say(f"task {task_id!r} failed: {task.get('error') or '(no error recorded)'}")
            for element in task.get("failed_elements") or ():
                say(f"  element {element.get('index')} failed after "
                    f"{element.get('attempts')} attempt(s): "
                    f"{element.get('error') or '(no error recorded)'}")
            if task.get("traceback"):
                say(str(task["traceback"]).rstrip())


_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def emit(console: Any, renderable: Any) -> None:
    """Print ``renderable`` (a table) without the spaces rich pads its last column with."""
    with console.capture() as captured:
        console.print(renderable)
    console.file.write(_TRAILING.sub(r"\1", captured.get()))
    console.file.flush()
