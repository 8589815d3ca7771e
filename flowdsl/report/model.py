"""What a report shows, as plain data: built from a `RunResult` or from the run store.

Both sources give the same shape, so one renderer draws both:
``{flow, run_id, status, started, ended, inputs, summary, edges_known, tasks, bars}`` where
``tasks`` is a list (plan order where known) of ``{id, status, attempts, duration, reason,
error, traceback, deps}`` and ``bars`` a list of attempts ``{task, attempt, index, start, end,
status, error}`` with epoch-second times.
"""

from __future__ import annotations

import json
import math
import reprlib
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..running.result import RunResult, TaskRun
    from ..store.base import SqlStore

__all__ = ["Report", "from_result", "from_store", "show_value", "stored_edges"]

Report = dict[str, Any]

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxdict = 20


def show_value(value: Any) -> str:
    """A value as a person reads it in the report (shortened, never more than a few lines)."""
    return value if isinstance(value, str) and len(value) <= 200 else _repr.repr(value)


def _number(value: Any) -> Any:
    """A summary value that JSON can carry (nan and inf become text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _traceback(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _bars_of(task: TaskRun) -> list[dict[str, Any]]:
    bars = []
    attempts = task.attempt_times()
    for position, attempt in enumerate(attempts):
        last = position == len(attempts) - 1
        if attempt.error is not None:
            status = "failed"
        elif last:
            status = task.status.value
        else:
            status = "failed"
        bars.append({
            "task": task.id, "attempt": attempt.number, "index": attempt.index,
            "start": attempt.started, "end": attempt.ended, "status": status,
            "error": _error_text(attempt.error),
        })
    return bars


def from_result(result: RunResult) -> Report:
    """The report of a run held in memory (``result.to_html()``)."""
    tasks = []
    bars: list[dict[str, Any]] = []
    for task in result.tasks.values():
        tasks.append({
            "id": task.id, "status": task.status.value, "attempts": task.attempts,
            "duration": task.duration, "reason": task.reason,
            "error": _error_text(task.error), "traceback": _traceback(task.error),
            "deps": list(task.step.dependencies),
        })
        bars.extend(_bars_of(task))
    starts = [bar["start"] for bar in bars if bar["start"] is not None]
    ends = [bar["end"] for bar in bars if bar["end"] is not None]
    return {
        "flow": result.flow, "run_id": result.run_id, "status": result.status.value,
        "started": min(starts, default=None), "ended": max(ends, default=None),
        "inputs": {str(k): show_value(v) for k, v in result.context.data.items()},
        "summary": {k: _number(v) for k, v in result.summary.items()},
        "edges_known": True, "tasks": tasks, "bars": bars,
    }


def from_store(store: SqlStore, run_id: str,
               dependencies: Mapping[str, Sequence[str]] | None = None) -> Report:
    """The report of a run recorded in ``store`` (raises `KeyError` for an unknown run id).

    The edges are the plan's dependencies as the store recorded them with the run (schema
    4); ``dependencies`` (task id -> upstream ids, e.g. from the flow's plan) replaces them. A
    run recorded before the store kept them, without ``dependencies``, shows the tasks only.
    """
    record = store.get_run(run_id)
    if dependencies is None:
        dependencies = stored_edges(store, run_id)
    rows = store.attempt_rows(run_id)
    deps = dict(dependencies or {})
    order: Iterable[str] = list(deps) if deps else record["tasks"]
    tasks = []
    for task_id in order:
        task = record["tasks"].get(task_id)
        if task is None:  # in the plan, never started or settled in the store
            task = {"status": "pending", "attempts": 0, "duration": None, "reason": None,
                    "error": None, "traceback": None}
        tasks.append({
            "id": task_id, "status": task["status"], "attempts": task["attempts"],
            "duration": task["duration"], "reason": task["reason"], "error": task["error"],
            "traceback": task["traceback"], "deps": list(deps.get(task_id, ())),
        })
    for task_id, task in record["tasks"].items():  # tasks the given plan does not have
        if deps and task_id not in deps:
            tasks.append({"id": task_id, "status": task["status"],
                          "attempts": task["attempts"], "duration": task["duration"],
                          "reason": task["reason"], "error": task["error"],
                          "traceback": task["traceback"], "deps": []})
    # each element of a mapped task: one bar from its first start to its end (the store keeps
    # an element's attempt count and span, not each of its attempts); they stand for the
    # mapped task's own row
    elements = store.read(
        "SELECT task_id, idx, attempts, started, ended, status, error FROM elements "
        "WHERE run_id = ? AND started IS NOT NULL ORDER BY started, task_id, idx", (run_id,))
    mapped = {row["task_id"] for row in elements}
    bars = [{
        "task": row["task_id"], "attempt": row["attempt"], "index": None,
        "start": row["started"], "end": row["ended"], "status": row["status"],
        "error": row["error"],
    } for row in rows if row["task_id"] not in mapped]
    bars += [{
        "task": row["task_id"], "attempt": max(row["attempts"], 1), "index": row["idx"],
        "start": row["started"], "end": row["ended"], "status": row["status"],
        "error": row["error"],
    } for row in elements]
    inputs = record["inputs"]
    shown = ({str(k): show_value(v) for k, v in inputs.items()} if isinstance(inputs, Mapping)
             else ({} if inputs is None else {"(inputs)": show_value(inputs)}))
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    summary: dict[str, Any] = {"total_tasks": len(tasks), **{
        f"{status}_tasks": n for status, n in sorted(counts.items())}}
    if record["started"] is not None and record["ended"] is not None:
        summary["wall_time"] = record["ended"] - record["started"]
    summary["sessions"] = len(record["sessions"])
    return {
        "flow": record["flow"], "run_id": record["run_id"], "status": record["status"],
        "started": record["started"], "ended": record["ended"], "inputs": shown,
        "summary": summary, "edges_known": bool(deps), "tasks": tasks, "bars": bars,
    }


def stored_edges(store: SqlStore, run_id: str) -> dict[str, list[str]] | None:
    """The plan's dependencies recorded with the run (task id -> upstream ids, in plan order),
    or None for a run recorded before the store kept them."""
    rows = store.read("SELECT plan_edges FROM runs WHERE run_id = ?", (run_id,))
    text = rows[0]["plan_edges"] if rows else None
    if not text:
        return None
    edges = json.loads(text)
    if not isinstance(edges, dict):
        return None
    return {str(task): [str(dep) for dep in deps] for task, deps in edges.items()}
