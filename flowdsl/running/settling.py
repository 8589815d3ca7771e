"""How a task, or the run, ends without running: restored from the store, SKIPPED or
CANCELLED before it starts, cancelled in flight, interrupted, and the run's end (status,
summary, `RunResult`). `SettlingRun` is that part of the run (`flowdsl.running.runtime.Run`);
everything that happens to a task that does run is in `runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .fields import RunFields
from ..compiling.plan import Plan
from ..status import RunStatus, TaskStatus
from .context import CurrentTask, TaskContext, TaskRecord, _current
from .events import Emit, RunFinished, TaskFinished
from .gate import Gate
from .journal import Journal, Restored
from .mapping import Mapped, restored_elements
from .metrics import summarize
from .result import RESTORED, RunResult, TaskRun

__all__ = ["SettlingRun", "CTRL_C"]

PENDING, RUNNING, COMPLETED = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED
#: The message of the cancel a run's event loop gets from Ctrl-C (see executors/loop.py).
CTRL_C = "flowdsl: Ctrl-C"


class SettlingRun(RunFields):
    """The settling side of a `Run`: what is restored, skipped, cancelled or interrupted,
    and the run's end."""

    __slots__ = ()  # the fields: `RunFields`

    if TYPE_CHECKING:  # provided by `Run`
        plan: Plan
        run_id: str
        context: TaskContext
        tasks: dict[str, TaskRun]
        journal: Journal | None
        emit: Emit | None
        gate: Gate
        gated: bool
        blocked: dict[str, str]
        stopped_by: str | None
        first_error: tuple[str, BaseException] | None
        interrupted: BaseException | None
        final: RunResult | None
        started: float
        preservation_time: float
        completed_here: int
        completed_time: float
        in_order: bool
        element_time: float
        elements_reused: int
        maps: dict[str, Mapped]
        store_time: float
        restored: int
        cached: int
        _unsaved: list[TaskRun]
        _sequence: Any

        def _journal(self, write: Any, *args: Any) -> None: ...
        def admit(self, unit: TaskRun) -> bool: ...

    # -- resuming ---------------------------------------------------------------------------
    def restore_completed(self, entries: Iterable[Restored]) -> None:
        """Bring back tasks completed in an earlier session, in their completion order:
        their results, ``previous_results`` and trace entries, and their deltas replayed
        (so the context is what an uninterrupted run would have built)."""
        context = self.context
        state = context.shared_state
        for entry in entries:
            task = self.tasks[entry.task_id]
            step = task.step
            record: TaskRecord = task  # its own record
            task.start_seq = next(self._sequence)
            token = _current.set(CurrentTask(step.id, self.run_id, record))
            try:
                state.apply(dict(entry.delta))
            finally:
                _current.reset(token)
            task.status = COMPLETED
            task.reason = RESTORED
            task.result = entry.result
            task.attempts = entry.attempts
            task.started_at, task.ended_at, task.duration = entry.started, entry.ended, entry.duration
            context.results[step.id] = entry.result
            context.previous_log.add(task)
            context.trace_log.add(task)
            context.book.keep(record)
            self.restored += 1
            if step.map_over and self.journal is not None:
                task.elements = restored_elements(
                    step, self.journal.restored_elements.get(step.id, ()))

    # -- settled without running ----------------------------------------------------------
    def _settle(self, task: TaskRun, status: TaskStatus, reason: str) -> None:
        """The one place a task becomes SKIPPED or CANCELLED."""
        task.status = status
        task.reason = reason
        self.gated = True
        if status is TaskStatus.CANCELLED:
            self.blocked.setdefault(task.task_id, task.task_id)
        if self.journal is not None:
            if self.interrupted is None:
                self._journal(self.journal.task_settled, task)
            else:
                self._unsaved.append(task)
        if task.ended_at is None:
            task.ended_at = time.time()  # when it was settled
        self.context.trace_log.add(task)
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=task.task_id, status=status,
                                   attempts=task.attempts, duration=0.0, reason=reason,
                                   attempt_times=tuple(task.attempt_times())))

    def stop_pending(self, unit: TaskRun) -> None:
        """After a critical failure: skip what is downstream of a failure, cancel the rest."""
        step = unit.step
        dep = self.gate.skipped_by(step)
        if dep is not None:
            self.blocked[step.id] = self.blocked[dep]
            self._settle(unit, TaskStatus.SKIPPED, self.gate.upstream_reason(dep))
        else:
            self._settle(unit, TaskStatus.CANCELLED,
                         f"critical task {self.stopped_by!r} failed")

    def settled_before_start(self, unit: TaskRun) -> bool:
        """Whether ``unit`` is settled without running: restored earlier, or settled now
        because the run stopped or a task upstream failed."""
        if unit.status is not PENDING:  # restored from the run store
            return True
        if self.stopped_by is not None:
            self.stop_pending(unit)
            return True
        if self.gated:
            return not self.admit(unit)
        return False

    def close_in_flight(self, task_id: str | None = None) -> None:
        """Discard from now on the writes of one task in flight (all, without ``task_id``):
        it is about to be cancelled, and what it writes while unwinding must not count."""
        active = self.context.book.active
        if task_id is None:
            records = list(active.values())
        else:
            records = [active[task_id]] if task_id in active else []
        for record in records:
            record.closed = True

    def _drop_in_flight(self, task: TaskRun) -> None:
        if task.started_at is not None:  # its time was spent in a handler, not in flowdsl
            task.ended_at = time.time()
            task.duration = max(0.0, task.ended_at - task.started_at)
        self.context.forget_in_flight(task.task_id)  # it keeps no record

    def cancel_in_flight(self, unit: TaskRun, reason: str) -> None:
        """CANCELLED while running (its async attempt was cancelled): no record is kept and
        ``restore_context`` is not called; its later writes are discarded."""
        self._drop_in_flight(unit)
        self._settle(unit, TaskStatus.CANCELLED, reason)

    def interrupt(self, exc: BaseException) -> None:
        """KeyboardInterrupt, SystemExit, CancelledError (or a runtime failure): stop now.

        The task in flight and the tasks not started are CANCELLED; what completed is kept.
        """
        self.interrupted = exc
        name = type(exc).__name__
        if name == "CancelledError" and exc.args == (CTRL_C,):  # Ctrl-C, on the run's loop
            name = "KeyboardInterrupt"
        reason = f"run interrupted by {name}"
        for task in self.tasks.values():
            if task.task_id in self.maps:
                self.maps[task.task_id].troubled = True
            for element in task.elements or ():
                if element.status in (PENDING, RUNNING, TaskStatus.RETRYING):
                    element.status, element.reason = TaskStatus.CANCELLED, reason
            if task.status in (RUNNING, TaskStatus.RETRYING):
                self._drop_in_flight(task)
                self._settle(task, TaskStatus.CANCELLED, reason)
            elif task.status is PENDING:
                self._settle(task, TaskStatus.CANCELLED, reason)

    # -- the end --------------------------------------------------------------------------
    def _status(self) -> RunStatus:
        if self.interrupted is not None:  # a store failure fails the run; an interrupt cancels it
            return RunStatus.FAILED if isinstance(self.interrupted, Exception) \
                else RunStatus.CANCELLED
        return RunStatus.FAILED if self.first_error is not None else RunStatus.SUCCEEDED

    def _completed_in_order(self, mapped: list[TaskRun]) -> tuple[float, float, int] | None:
        """``(execution time, time in handlers, elements)`` when every task completed here,
        one at a time, and every element of its mapped tasks too (none restored or cached):
        the summary's figures from the sums kept as they completed (see `summarize`)."""
        if not self.in_order or self.completed_here != len(self.tasks) or self.elements_reused:
            return None
        in_handlers = self.completed_time
        elements = 0
        for task in mapped:  # a mapped task's time in handlers is its elements'
            in_handlers -= task.duration or 0.0
            elements += len(task.elements or ())
        return self.completed_time, in_handlers + self.element_time, elements

    def finish(self) -> RunResult:
        """Stop the clock, summarise, and build the `RunResult`."""
        status = self._status()
        self.context.shared_state.in_flight = None  # the run is over: writes are plain again
        book = self.context.book
        if len(book.by_task) > book.limit:
            book.trim()  # exactly ``limit`` records kept from here (see `Records`)
        if self.journal is not None:
            try:
                self._journal(self.journal.run_finished, status, self._unsaved)
            except Exception:
                if self.interrupted is None:
                    raise
        wall_time = perf_counter() - self.started
        context = self.context
        mapped = [self.tasks[task_id] for task_id in self.plan.mapped] \
            if self.plan.mapped else []
        summary = summarize(self.tasks, wall_time, self.preservation_time,
                            len(context.data) + len(context.shared_state), mapped=mapped,
                            completed_in_order=self._completed_in_order(mapped))
        if self.journal is not None:
            summary["store_time"] = self.store_time
            summary["restored_tasks"] = self.restored
            summary["cached_tasks"] = self.cached
        failed_task, error = self.first_error if self.first_error else (None, None)
        result = RunResult(  # (positional: no dict of keywords per run)
            self.plan.flow, self.run_id, status, context.results, self.tasks, context, summary,
            error, failed_task)
        self.final = result
        if self.emit is not None:
            self.emit(RunFinished(run_id=self.run_id, flow=self.plan.flow, status=status,
                                  summary=summary))
        return result
