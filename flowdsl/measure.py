"""`measure_overhead`: the task-switching overhead of a user's own flow."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

__all__ = ["OverheadReport", "measure_overhead"]


@attrs.frozen(kw_only=True)
class OverheadReport:
    """Overhead per task (seconds: wall time minus time in handlers, per task that ran)."""

    median: float
    min: float
    max: float
    handler_time: float  # median seconds spent inside handlers per run
    tasks: int  # tasks that ran per run
    runs: tuple[dict[str, Any], ...] = attrs.field(repr=False)

    def __str__(self) -> str:
        return (
            f"{self.median * 1e6:.2f} µs/task overhead (min {self.min * 1e6:.2f}, max "
            f"{self.max * 1e6:.2f}) over {len(self.runs)} runs of {self.tasks} tasks; "
            f"{self.handler_time * 1e3:.3f} ms in handlers per run"
        )


def measure_overhead(flow: Any, initial: Mapping[str, Any] | None = None, *, repeat: int = 5,
                     **run_options: Any) -> OverheadReport:
    """Run ``flow`` ``repeat`` times and report its orchestration overhead per task (a
    failed run is measured like any other: it does not raise)."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat!r}")
    from statistics import median  # (statistics is slow to import: only when measuring)

    run_options.setdefault("raise_on_failure", False)
    summaries = []
    for _ in range(repeat):
        result = flow.run(initial, **run_options)
        summaries.append(result.summary)
    overheads = [s["orchestration_overhead_per_task"] for s in summaries]
    in_handlers = [s["wall_time"] - s["orchestration_overhead_per_task"] * _ran(s) for s in summaries]
    return OverheadReport(
        median=median(overheads),
        min=min(overheads),
        max=max(overheads),
        handler_time=median(in_handlers),
        tasks=_ran(summaries[-1]),
        runs=tuple(summaries),
    )


def _ran(summary: Mapping[str, Any]) -> int:
    ran: int = summary["successful_tasks"] + summary["failed_tasks"]
    return ran - int(summary.get("restored_tasks", 0))
