"""The sequential executor: one task at a time, in plan order, in the caller's thread."""

from __future__ import annotations

from typing import Any, Callable

from ..running.runtime import Run
from ..status import TaskStatus
from .base import Executor

__all__ = ["SequentialExecutor"]

PENDING = TaskStatus.PENDING


class SequentialExecutor(Executor):
    """Run tasks one by one in plan order (``max_concurrency=1``).

    A flow of sync handlers runs inline, with no event loop; ``sleep``/``async_sleep``
    replace the waits between retries (tests inject fakes so they never sleep).
    """

    def __init__(self, *, sleep: Callable[[float], Any] | None = None,
                 async_sleep: Callable[[float], Any] | None = None) -> None:
        self.sleep = sleep
        self.async_sleep = async_sleep

    @staticmethod
    def _settled_without_running(run: Run, step: Any, task: Any) -> bool:
        """Restored, or settled now because the run stopped or an upstream task failed."""
        if task.status is not PENDING:  # restored from the run store
            return True
        if run.stopped_by is not None:
            run.stop_pending(step, task)
            return True
        if run.blocked:
            cause = run.blocking_cause(step)
            if cause is not None:
                run.skip(step, task, cause)
                return True
        return False

    def execute(self, run: Run) -> None:
        tasks = run.tasks
        for step in run.plan.steps:
            task = tasks[step.id]
            if not self._settled_without_running(run, step, task):
                run.run_task(step, task)

    async def aexecute(self, run: Run) -> None:
        tasks = run.tasks
        for step in run.plan.steps:
            task = tasks[step.id]
            if self._settled_without_running(run, step, task):
                continue
            if step.is_async:
                await run.arun_task(step, task)
            else:
                run.run_task(step, task)

    def __repr__(self) -> str:
        return "SequentialExecutor()"
