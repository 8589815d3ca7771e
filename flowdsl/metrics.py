"""The run summary (the seed's keys plus overhead) and the flow's execution metrics."""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Mapping

from .status import TaskStatus

__all__ = ["busy_time", "summarize", "FlowMetrics"]

_RAN = (TaskStatus.COMPLETED, TaskStatus.FAILED)


def busy_time(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals (their sum when none overlap)."""
    total = 0.0
    current_start = current_end = None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start  # type: ignore[operator]
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_end is not None:
        total += current_end - current_start  # type: ignore[operator]
    return total


def summarize(tasks: Mapping[str, Any], wall_time: float, preservation_time: float,
              context_size: int, restored: int | None = None) -> dict[str, Any]:
    """The summary of one run, from its task runs. O(tasks), once per run."""
    counts = {status: 0 for status in TaskStatus}
    ran = []
    for task in tasks.values():
        counts[task.status] += 1
        if task.status in _RAN and task.duration is not None and task.reason is None:
            ran.append(task)
    total = len(tasks)
    successful = counts[TaskStatus.COMPLETED]
    total_time = sum(task.duration for task in ran)
    in_handlers = busy_time((task.started_at, task.ended_at) for task in ran)
    summary = {
        "total_tasks": total,
        "successful_tasks": successful,
        "failed_tasks": counts[TaskStatus.FAILED],
        "skipped_tasks": counts[TaskStatus.SKIPPED],
        "cancelled_tasks": counts[TaskStatus.CANCELLED],
        "success_rate": successful / total if total else 1.0,
        "total_execution_time": total_time,
        "context_preservation_overhead": preservation_time,
        "average_task_duration": total_time / len(ran) if ran else 0.0,
        "context_efficiency": 1.0 / (1.0 + context_size / 10_000),
        "orchestration_overhead_per_task": max(wall_time - in_handlers, 0.0) / len(ran) if ran else 0.0,
        "wall_time": wall_time,
    }
    if restored is not None:
        summary["restored_tasks"] = restored
    return summary


class FlowMetrics:
    """Totals across one flow's runs, and what its last run looked like (seed's metrics)."""

    def __init__(self) -> None:
        self.totals = {
            "total_tasks": 0,
            "successful_tasks": 0,
            "failed_tasks": 0,
            "total_execution_time": 0.0,
            "context_preservation_overhead": 0.0,
        }
        self.durations: dict[str, deque[float]] = {}
        self.last_summary: dict[str, Any] = {}
        self.last_statuses: dict[str, int] = {}
        self.last_context_size = 0

    def record(self, result: Any) -> None:
        """Fold one finished run in (once per run, after its clock stopped)."""
        summary = result.summary
        for key in self.totals:
            self.totals[key] += summary[key]
        statuses: dict[str, int] = {}
        for task in result.tasks.values():
            statuses[task.status.value] = statuses.get(task.status.value, 0) + 1
            if task.status in _RAN and task.duration is not None and task.reason is None:
                history = self.durations.get(task.id)
                if history is None:
                    history = self.durations[task.id] = deque(maxlen=10)
                history.append(task.duration)
        self.last_summary = summary
        self.last_statuses = statuses
        context = result.context
        self.last_context_size = len(context.data) + len(context.shared_state)

    def report(self) -> dict[str, Any]:
        """The seed program's ``get_execution_metrics()`` dict."""
        return {
            "execution_stats": dict(self.totals),
            "task_performance": {task: list(d) for task, d in self.durations.items()},
            "context_efficiency": self.last_summary.get("context_efficiency", 1.0),
            "current_context_size": self.last_context_size,
            "task_status_distribution": dict(self.last_statuses),
        }
