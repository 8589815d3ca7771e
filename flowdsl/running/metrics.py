"""The run summary (the seed's keys plus overhead) and the flow's execution metrics."""

from __future__ import annotations

import threading
from collections import deque
from operator import itemgetter
from typing import Any, Iterable, Mapping, Sequence

from ..status import TaskStatus

__all__ = ["busy_time", "summarize", "FlowMetrics"]

COMPLETED, FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED
SKIPPED, CANCELLED = TaskStatus.SKIPPED, TaskStatus.CANCELLED


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


def _spans_in_order(timed: Sequence[Any]) -> float | None:
    """`busy_time` of the spans (``started_at``, ``ended_at``) of ``timed`` when each starts
    after the one before ended (a sequential run: no tuple each, no sort; the same sum,
    issue 16), else None."""
    total = 0.0
    last_end = float("-inf")
    for task in timed:
        start, end = task.started_at, task.ended_at
        if start is None or end is None or start <= last_end:
            return None
        total += end - start
        last_end = end
    return total


def summarize(tasks: Mapping[str, Any], wall_time: float, preservation_time: float,
              context_size: int, restored: int | None = None,
              mapped: Sequence[Any] = (),
              completed_in_order: tuple[float, float, int] | None = None) -> dict[str, Any]:
    """The summary of one run, from its task runs. O(tasks), once per run.

    "Ran" means completed or failed in this run (restored tasks did not run). ``elements``
    counts the elements of ``mapped`` tasks (the plan's, known before the run) whose handler
    ran in this run; each is a task switch of its own in the overhead figure, and their
    attempts (not the whole map) are handler time.

    ``completed_in_order``: ``(execution time, time in handlers, elements)`` when the run
    knows every task (and element) completed in it, one after another, from the durations it
    summed as they completed: no span overlaps another, and no task is read (issue 16: the
    loop of `_all_ran_here` cost ~700 instructions per task, `_spans_in_order` as much per
    element).
    """
    if completed_in_order is not None:
        total = len(tasks)
        spent, busy, elements_ran = completed_in_order
        return _summary(total, total, 0, 0, 0, spent, total, preservation_time,
                        context_size, wall_time, busy, elements_ran, restored)
    if not mapped:
        quick = _all_ran_here(tasks.values())
        if quick is not None:
            total = len(tasks)
            return _summary(total, total, 0, 0, 0, quick[0], total, preservation_time,
                            context_size, wall_time, quick[1], 0, restored)
    successful = failed = skipped = cancelled = 0
    ran = []
    interrupted = []  # cancelled in flight: their time was inside a handler
    for task in tasks.values():
        status = task.status
        if status is COMPLETED:
            successful += 1
            if task.duration is not None and (task.rare is None or task.rare.reason is None):
                ran.append(task)
        elif status is FAILED:
            failed += 1
            ran.append(task)
        elif status is SKIPPED:
            skipped += 1
        elif status is CANCELLED:
            cancelled += 1
            if task.duration is not None:
                interrupted.append(task)
    total = len(tasks)
    total_time = sum([task.duration for task in ran])
    # a mapped task's time is its elements' spans; without mapped tasks, no check per task
    timed = [task for task in ran + interrupted if task.elements is None] if mapped \
        else ran + interrupted
    elements = 0
    for task in mapped:
        for element in task.elements:
            # not restored, cached, cancelled (``rare`` read: a slot, not a descriptor call)
            if element.attempts and (element.rare is None or element.rare.reason is None):
                elements += 1
                if element.started_at is not None and element.ended_at is not None:
                    timed.append(element)
    in_handlers = _spans_in_order(timed)
    if in_handlers is None:
        in_handlers = busy_time([(task.started_at, task.ended_at) for task in timed])
    return _summary(total, successful, failed, skipped, cancelled, total_time, len(ran),
                    preservation_time, context_size, wall_time, in_handlers, elements, restored)


def _all_ran_here(tasks: Iterable[Any]) -> tuple[float, float] | None:
    """``(total_time, in_handlers)`` when every task completed in this run (none restored,
    cached or settled without running), in one loop where the general path takes three
    (issue 16: `summarize` of 1,000 tasks, 1,522 -> 1,088 instructions per task under
    callgrind); None otherwise."""
    total_time = in_handlers = 0.0
    last_end = float("-inf")
    ordered = True
    for task in tasks:
        # (``task.rare`` read rather than ``task.reason``: a slot, not a descriptor call per task)
        if task.status is not COMPLETED or task.rare is not None and task.rare.reason is not None:
            return None
        duration, start, end = task.duration, task.started_at, task.ended_at
        if duration is None or start is None or end is None:
            return None
        total_time += duration
        if start <= last_end:
            ordered = False  # spans overlap: their union, below
        in_handlers += end - start
        last_end = end
    if not ordered:
        in_handlers = busy_time([(task.started_at, task.ended_at) for task in tasks])
    return total_time, in_handlers


def _summary(total: int, successful: int, failed: int, skipped: int, cancelled: int,
             total_time: float, ran: int, preservation_time: float, context_size: int,
             wall_time: float, in_handlers: float, elements: int,
             restored: int | None) -> dict[str, Any]:
    switches = ran + elements
    outside = wall_time - in_handlers
    summary = {
        "total_tasks": total,
        "successful_tasks": successful,
        "failed_tasks": failed,
        "skipped_tasks": skipped,
        "cancelled_tasks": cancelled,
        "success_rate": successful / total if total else 1.0,
        "total_execution_time": total_time,
        "context_preservation_overhead": preservation_time,
        "average_task_duration": total_time / ran if ran else 0.0,
        "context_efficiency": 1.0 / (1.0 + context_size / 10_000),
        "orchestration_overhead_per_task":  # (no `max()` call: ~1,000 instructions)
            (outside if outside > 0.0 else 0.0) / switches if switches else 0.0,
        "wall_time": wall_time,
        "elements": elements,
    }
    if restored is not None:
        summary["restored_tasks"] = restored
    return summary


#: The summary's figures `FlowMetrics` sums across runs, and how many runs it sums at once.
_TOTALED = ("total_tasks", "successful_tasks", "failed_tasks", "total_execution_time",
            "context_preservation_overhead")
_FOLD = 64


class FlowMetrics:
    """Totals across one flow's runs, and what its last run looked like (the seed's metrics).

    Each run adds its summary and one list of durations; the totals fold the summaries in
    batches, and per-task histories are assembled only when `report` is asked for.
    """

    def __init__(self) -> None:
        self._totals = dict.fromkeys(_TOTALED, 0)
        #: summaries not yet added to the totals: folded in batches of `_FOLD`, a sum per
        #: key in C, where adding each run's five figures cost ~3,000 instructions a run.
        #: Runs of one flow in several threads append at once (a deque's ``append`` and
        #: ``popleft`` are atomic); one fold at a time (the lock) takes each summary once.
        self._unfolded: deque[dict[str, Any]] = deque()
        self._folding = threading.Lock()
        self.history: deque[tuple[tuple[str, ...], list[float | None]]] = deque(maxlen=10)
        self.last_summary: dict[str, Any] = {}
        self.last_context_size = 0

    def record(self, result: Any) -> None:
        """Fold one finished run in (once per run, after its clock stopped)."""
        summary = result.summary
        self._unfolded.append(summary)
        if len(self._unfolded) >= _FOLD:
            self._fold()
        tasks = result.tasks
        if summary["successful_tasks"] == len(tasks) and not summary.get("restored_tasks") \
                and not summary.get("cached_tasks"):  # every task ran here: no reason to read
            # (a comprehension: its specialised slot read costs half of `attrgetter`'s)
            durations = [task.duration for task in tasks.values()]
        else:  # (``task.rare`` read, not ``task.reason``: a slot, not a descriptor call)
            durations = [task.duration if task.rare is None or task.rare.reason is None
                         else None for task in tasks.values()]
        self.history.append((tuple(tasks), durations))
        self.last_summary = summary
        context = result.context
        self.last_context_size = len(context.data) + len(context.shared_state)

    @property
    def totals(self) -> dict[str, Any]:
        """The five summed figures of every run recorded (``execution_stats``)."""
        self._fold()
        return self._totals

    def _fold(self) -> None:
        with self._folding:
            unfolded = self._unfolded  # (other threads may append meanwhile: not taken)
            batch = [unfolded.popleft() for _ in range(len(unfolded))]
            totals = self._totals
            for key in _TOTALED:
                totals[key] += sum(map(itemgetter(key), batch))

    def durations(self) -> dict[str, list[float]]:
        """Task id -> its durations in the last 10 runs where it ran, oldest first."""
        per_task: dict[str, list[float]] = {}
        for ids, durations in self.history:
            for task_id, duration in zip(ids, durations):
                if duration is not None:
                    per_task.setdefault(task_id, []).append(duration)
        return per_task

    def report(self) -> dict[str, Any]:
        """The seed program's ``get_execution_metrics()`` dict."""
        last = self.last_summary
        statuses = {
            status: last.get(f"{key}_tasks", 0)
            for status, key in (("completed", "successful"), ("failed", "failed"),
                                ("skipped", "skipped"), ("cancelled", "cancelled"))
        } if last else {}
        return {
            "execution_stats": dict(self.totals),
            "task_performance": self.durations(),
            "context_efficiency": last.get("context_efficiency", 1.0),
            "current_context_size": self.last_context_size,
            "task_status_distribution": {k: v for k, v in statuses.items() if v},
        }
