"""The loguru observer: one bound logger per run, with ``run_id`` and ``task_id`` fields.

flowdsl's logger is disabled on import (a library adds no sinks); ``logger.enable("flowdsl")``
turns it on, and from then on each run attaches this observer.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from ..errors import error_text
from ..running.gate import CONDITION_FALSE
from ..running.events import RunFinished, RunStarted, TaskFinished, TaskRetrying, TaskStarted
from ..status import TaskStatus

__all__ = ["LoggingObserver", "logging_enabled"]


def logging_enabled() -> bool:
    """Whether loguru would emit records logged from flowdsl (checked once per run).

    loguru has no public query for this; we read the activation list it keeps for
    ``logger.enable``/``disable`` and assume "enabled" if its layout ever changes. loguru
    replaces its handlers dict and activation list on every change (copy on write), so the
    answer for the pair last seen is kept with them (~2,000 instructions per run; issue 16).
    """
    try:
        core = logger._core  # type: ignore[attr-defined]
        handlers, activation = core.handlers, core.activation_list
    except AttributeError:
        return True
    global _last
    last = _last  # (one read: another thread may replace it meanwhile)
    if handlers is last[0] and activation is last[1]:
        return last[2]
    enabled = _enabled(handlers, activation)
    _last = (handlers, activation, enabled)  # (references held: no id is reused)
    return enabled


#: loguru's handlers and activation list last seen, and the answer for them
_last: tuple[Any, Any, bool] = (None, None, True)


def _enabled(handlers: Any, activation: Any) -> bool:
    if not handlers:
        return False
    dotted = __name__ + "."
    for prefix, status in activation:
        if dotted[: len(prefix)] == prefix:
            return bool(status)
    return True


class LoggingObserver:
    """Log a run's events through loguru, bound to the run id (and task id per task)."""

    def __init__(self, run_id: str | None = None, flow: str | None = None) -> None:
        self.log = logger.bind(run_id=run_id, flow=flow)

    def on_event(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self.log = logger.bind(run_id=event.run_id, flow=event.flow)
            self.log.info("run {} of flow {!r} started: {} tasks", event.run_id, event.flow,
                          event.total_tasks)
        elif isinstance(event, TaskStarted):
            self.log.bind(task_id=event.task_id).debug("task {!r} started", event.task_id)
        elif isinstance(event, TaskRetrying):
            self.log.bind(task_id=event.task_id).warning(
                "task {!r} attempt {} failed ({}); retrying in {:.3g} s",
                event.task_id, event.attempt, error_text(event.error), event.wait)
        elif isinstance(event, TaskFinished):
            log = self.log.bind(task_id=event.task_id)
            if event.status is TaskStatus.COMPLETED:
                log.info("task {!r} completed in {:.6f} s ({} attempt(s))", event.task_id,
                         event.duration, event.attempts)
            elif event.status is TaskStatus.FAILED:
                log.error("task {!r} failed after {} attempt(s): {}", event.task_id,
                          event.attempts,
                          error_text(event.error) if event.error is not None else "no error")
            elif event.reason and CONDITION_FALSE in event.reason:  # a branch not taken
                log.info("task {!r} {}: {}", event.task_id, event.status.value, event.reason)
            else:
                log.warning("task {!r} {}: {}", event.task_id, event.status.value, event.reason)
        elif isinstance(event, RunFinished):
            self.log.info("run {} {}: {}/{} tasks succeeded", event.run_id, event.status.value,
                          event.summary["successful_tasks"], event.summary["total_tasks"])
