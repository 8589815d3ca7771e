"""The policy side of a `Run`: how the attempts of a unit are called, retried through
tenacity (``retries``, ``retry_wait``, ``retry_on``) and timed out (``timeout``), and what each
attempt and retry leaves in the task's history, the journal, the trace and the events."""

from __future__ import annotations

import time
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import tenacity

from ..errors import error_text
from ..status import TaskStatus
from .attempts import Args, Kwargs, Means, call_in_thread, check_produces
from .context import CurrentTask, TaskContext
from .events import Emit, TaskRetrying
from .fields import RunFields
from .journal import Journal
from .result import Attempt, TaskRun

__all__ = ["RetryingRun"]

RUNNING = TaskStatus.RUNNING


class RetryingRun(RunFields):
    """Attempts and retries of a `Run`'s units (`Run.run_unit` calls `_call_sync` unless a
    task runs once, without a timeout: then the handler directly)."""

    __slots__ = ()  # the fields: `RunFields`

    if TYPE_CHECKING:  # provided by `Run`
        run_id: str
        context: TaskContext
        journal: Journal | None
        emit: Emit | None
        _offset: float

        def _journal(self, write: Any, *args: Any) -> None: ...

    def _attempt_started(self, task: TaskRun, current: CurrentTask) -> None:
        task.attempts += 1
        current.attempt = task.attempts
        task.status = RUNNING
        if task.history is None:  # the first attempt starts when its task does (`started_at`)
            task.history = []
            started = task.started_at
            if started is None:
                started = self._offset + perf_counter()
        else:
            started = self._offset + perf_counter()
        task.history.append(Attempt(task.attempts, task.index, started))
        if self.journal is not None and task.attempts > 1 and task.index is None:
            # the first: with the task's start; an element's attempts: with its outcome
            self._journal(self.journal.attempt_started, task)

    def _retrying(self, unit: TaskRun) -> dict[str, Any]:
        step = unit.step
        return {
            "stop": tenacity.stop_after_attempt(step.retries + 1),
            "wait": step.retry_wait,
            "retry": step.retry_on,
            "before_sleep": lambda state: self._retry(unit, state),
            "reraise": True,
        }

    def _call_sync(self, unit: TaskRun, current: CurrentTask, args: Args, kwargs: Kwargs,
                   sleep: Callable[[float], None]) -> Any:
        step = unit.step

        def attempt() -> Any:
            self._attempt_started(unit, current)
            if step.timeout is None:
                result = step.handler(*args, **kwargs)
            else:
                result = call_in_thread(step, current, args, kwargs)
            if step.produces:
                check_produces(step, result)
            return result

        if not step.retries:
            return attempt()
        return tenacity.Retrying(sleep=sleep, **self._retrying(unit))(attempt)

    async def _call_async(self, unit: TaskRun, current: CurrentTask, args: Args, kwargs: Kwargs,
                          means: Means) -> Any:
        step, submit = unit.step, means.submit

        async def attempt() -> Any:
            self._attempt_started(unit, current)
            result = await submit(step, current, args, kwargs)
            if step.produces:
                check_produces(step, result)
            return result

        if not step.retries:
            return await attempt()
        wait = means.wait
        if wait is None:
            retrying = tenacity.AsyncRetrying(**self._retrying(unit))
        else:
            async def sleep(seconds: float) -> None:
                await wait(step.pool, seconds)

            retrying = tenacity.AsyncRetrying(sleep=sleep, **self._retrying(unit))
        return await retrying(attempt)

    def _retry(self, unit: TaskRun, state: tenacity.RetryCallState) -> None:
        """tenacity's ``before_sleep``: an attempt failed and another one will follow."""
        step, task = unit.step, unit
        error = state.outcome.exception() if state.outcome is not None else None
        assert error is not None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        task.status = TaskStatus.RETRYING
        if task.history:
            task.history[-1].ended = self._offset + perf_counter()
            task.history[-1].error = error
        if self.journal is not None and task.index is None:
            self._journal(self.journal.attempt_failed, task, error)
        details: dict[str, Any] = {"attempt": state.attempt_number, "error": error_text(error),
                                   "wait": wait}
        if unit.index is not None:
            details["index"] = unit.index
        self.context.trace_log.add({"task_id": step.id, "action": "task_retry", "details": details,
                            "timestamp": time.time()})
        if self.emit is not None:
            self.emit(TaskRetrying(run_id=self.run_id, task_id=step.id,
                                   attempt=state.attempt_number, error=error, wait=wait,
                                   index=unit.index))
