"""The run state machine: task lifecycle, context bookkeeping, events and the result.

Executors drive a `Run` (which task runs when); the `Run` does what happens to each task:
bind its arguments, call it under its policy, publish its result and record its delta.
It knows nothing of logging sinks, stores or progress bars: it emits typed events.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from time import perf_counter
from typing import Any, Callable, Iterable, Mapping

from .attempts import call_async, call_sync, check_produces
from .context import CurrentTask, TaskContext, TaskRecord, _current
from ..errors import SerializationError
from ..executors.base import Executor
from .events import RunFinished, RunStarted, TaskFinished, TaskRetrying, TaskStarted, as_callback
from .metrics import summarize
from ..declaring.spec import MISSING
from ..compiling.plan import Plan
from .result import RunResult, TaskRun
from ..status import RunStatus, TaskStatus
from .strategies import DEFAULT_MAX_RECORDS, ContextPreservationStrategy, active_hooks

__all__ = ["Run", "drive", "adrive"]

COMPLETED, FAILED, RUNNING = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.RUNNING


def _emitter(observers: Iterable[Any]) -> Callable[[Any], None] | None:
    callbacks = [as_callback(o) for o in observers]
    if not callbacks:
        return None

    def emit(event: Any) -> None:
        for callback in callbacks:
            try:
                callback(event)
            except Exception as exc:  # an observer cannot change the run
                warnings.warn(f"flowdsl observer {callback!r} raised {exc!r}", RuntimeWarning,
                              stacklevel=2)

    return emit


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Run:
    """One execution of a plan: its context, its task runs and its bookkeeping."""

    def __init__(
        self,
        plan: Plan,
        initial: Mapping[str, Any],
        *,
        run_id: str,
        strategy: ContextPreservationStrategy,
        observers: Iterable[Any] = (),
        journal: Any = None,
        started: float | None = None,
    ) -> None:
        self.started = perf_counter() if started is None else started  # the run's wall clock
        self.plan = plan
        self.run_id = run_id
        limit = getattr(strategy, "max_context_items", DEFAULT_MAX_RECORDS)
        self.context = TaskContext(run_id, initial, max_records=limit)
        self.tasks: dict[str, TaskRun] = {step.id: TaskRun(step) for step in plan.steps}
        self.preserve, self.restore = active_hooks(strategy)
        self.emit = _emitter(observers)
        self.blocked: dict[str, str] = {}  # failed or skipped task -> the failed task behind it
        self.stopped_by: str | None = None  # the critical task whose failure stopped the run
        self.interrupted: BaseException | None = None
        self.first_error: tuple[str, BaseException] | None = None
        self.final: RunResult | None = None  # set by finish()
        self.preservation_time = 0.0
        self.sleep: Callable[[float], Any] = time.sleep
        self.async_sleep: Callable[[float], Any] = asyncio.sleep
        self._offset = time.time() - perf_counter()  # perf_counter -> epoch seconds, now
        self._sequence = self.context.shared_state._sequence
        self.journal = journal  # the run store's journal, or None
        self.store_time = getattr(journal, "open_time", 0.0)
        self.restored = 0
        self._unsaved: list[TaskRun] = []  # settled during an interrupt; written at finish
        self.slots: Any = None  # concurrency slots (concurrent executor only)
        self.thread_pool: Any = None  # where sync handlers run under the concurrent executor
        self.remote: Any = None  # runs attempts elsewhere (the Dask executor), or None
        #: ``() -> {task id: recent durations}``, for adaptive scheduling
        self.history_source: Callable[[], Mapping[str, list[float]]] = dict

    def announce(self) -> None:
        """Tell observers the run starts (after any restore, so they can count it)."""
        if self.emit is not None:
            self.emit(RunStarted(run_id=self.run_id, flow=self.plan.flow,
                                 total_tasks=len(self.plan.steps), restored=self.restored))

    # -- resuming ---------------------------------------------------------------------------
    def restore_completed(self, entries: Iterable[Any], reason: str) -> None:
        """Bring back tasks completed in an earlier session, in their completion order:
        their results, ``previous_results`` and trace entries, and their deltas replayed
        (so the context is what an uninterrupted run would have built)."""
        context = self.context
        state = context.shared_state
        for entry in entries:
            task = self.tasks[entry.task_id]
            step = task.step
            record = TaskRecord(step.id, step.importance, next(self._sequence))
            token = _current.set(CurrentTask(step.id, self.run_id, record))
            try:
                state.apply(dict(entry.delta))
            finally:
                _current.reset(token)
            task.status = COMPLETED
            task.reason = reason
            task.result = entry.result
            task.attempts = entry.attempts
            task.started_at, task.ended_at, task.duration = entry.started, entry.ended, entry.duration
            context._results[step.id] = entry.result
            context._previous.add(task)
            context._trace.add(task)
            record.status = COMPLETED
            record.duration = entry.duration or 0.0
            record.closed = True
            if record.delta and record.importance < 6:
                record.importance += 1
            context._records.add(record)
            self.restored += 1

    # -- which tasks may start ------------------------------------------------------------
    def blocking_cause(self, step: Any) -> str | None:
        """The failed task upstream of ``step``, if any."""
        blocked = self.blocked
        for dep in step.dependencies:
            cause = blocked.get(dep)
            if cause is not None:
                return cause
        return None

    # -- running one task -----------------------------------------------------------------
    def _begin(self, step: Any, task: TaskRun) -> tuple[TaskRecord, CurrentTask, Any]:
        record = TaskRecord(step.id, step.importance, next(self._sequence))
        current = CurrentTask(step.id, self.run_id, record)
        task.status = RUNNING
        self.context._records.active[step.id] = record
        if self.journal is not None:
            self._journal(self.journal.task_started, task)
        if self.emit is not None:
            self.emit(TaskStarted(run_id=self.run_id, task_id=step.id))
        return record, current, _current.set(current)

    def _journal(self, write: Callable[..., None], *args: Any) -> None:
        """One synchronous call into the run store, timed as orchestration (store_time)."""
        start = perf_counter()
        try:
            write(*args)
        finally:
            self.store_time += perf_counter() - start

    def attempt_started(self, task: TaskRun) -> None:
        """A retry's attempt begins (the first attempt is journalled with the task's start)."""
        if self.journal is not None and task.attempts > 1:
            self._journal(self.journal.attempt_started, task)

    def _enter(self, step: Any, task: TaskRun, record: TaskRecord,
               t0: float) -> tuple[float, tuple[Any, ...], dict[str, Any]]:
        """The strategy's ``preserve_context``, then the handler's arguments; returns the
        first attempt's start time with them (binding is orchestration, not handler time)."""
        if self.preserve is not None:
            self.preserve(self.context, task)
            t0, hook_start = perf_counter(), t0
            self.preservation_time += t0 - hook_start
        args, kwargs, record.reads = step.bind(self.context)
        t0 = perf_counter()
        task.started_at = self._offset + t0
        return t0, args, kwargs

    def run_task(self, step: Any, task: TaskRun) -> None:
        """Run one task in this thread (sync handlers; no event loop involved)."""
        record, current, token = self._begin(step, task)
        t0 = perf_counter()
        try:
            t0, args, kwargs = self._enter(step, task, record, t0)
            if step.retries or step.timeout is not None:
                result = call_sync(self, step, task, current, args, kwargs)
            else:
                task.attempts = 1
                result = step.handler(*args, **kwargs)
                if step.produces:
                    check_produces(step, result)
            t1 = perf_counter()  # the last attempt ended
            if step.produces:
                self._write_produced(step, result)
        except Exception as exc:
            self._failed(step, task, record, exc, t0, perf_counter())
        else:
            self._completed(step, task, record, result, t0, t1)
        finally:
            _current.reset(token)

    async def arun_task(self, step: Any, task: TaskRun) -> None:
        """Run one task on the event loop (an async handler, or under the concurrent and
        Dask executors any handler)."""
        record, current, token = self._begin(step, task)
        t0 = perf_counter()
        try:
            t0, args, kwargs = self._enter(step, task, record, t0)
            result = await call_async(self, step, task, current, args, kwargs)
            t1 = perf_counter()  # the last attempt ended
            if step.produces:
                self._write_produced(step, result)
        except Exception as exc:
            self._failed(step, task, record, exc, t0, perf_counter())
        else:
            self._completed(step, task, record, result, t0, t1)
        finally:
            _current.reset(token)

    def _write_produced(self, step: Any, result: Mapping[str, Any]) -> None:
        state = self.context.shared_state
        for key in step.produces:
            state[key] = result[key]

    def retrying(self, step: Any, task: TaskRun, state: Any) -> None:
        """tenacity's ``before_sleep``: an attempt failed and another one will follow."""
        error = state.outcome.exception()
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        task.status = TaskStatus.RETRYING
        if self.journal is not None:
            self._journal(self.journal.attempt_failed, task, error)
        self.context._trace.add({
            "task_id": step.id,
            "action": "task_retry",
            "details": {"attempt": state.attempt_number, "error": _error_text(error), "wait": wait},
            "timestamp": time.time(),
        })
        if self.emit is not None:
            self.emit(TaskRetrying(run_id=self.run_id, task_id=step.id,
                                   attempt=state.attempt_number, error=error, wait=wait))

    # -- outcomes -------------------------------------------------------------------------
    def _restore(self, task: TaskRun) -> BaseException | None:
        try:
            self.restore(self.context, task)  # type: ignore[misc]
        except Exception as exc:
            return exc
        return None

    def _completed(self, step: Any, task: TaskRun, record: TaskRecord, result: Any,
                   t0: float, t1: float) -> None:
        task.status = COMPLETED
        task.result = result
        duration = t1 - t0
        task.duration = duration
        task.ended_at = self._offset + t1
        if self.restore is not None:
            hook_error = self._restore(task)
            if hook_error is not None:  # a strategy that fails fails the task
                task.result = None
                self._failed(step, task, record, hook_error, t0, t1, hook_called=True)
                return
        arrived: BaseException | None = None  # an interrupt that came once it was committed
        if self.journal is not None:
            try:
                self._journal(self.journal.task_completed, task, result, record.delta)
            except SerializationError as exc:  # the store vetoes: not retried, writes undone
                self._undo_writes(record)
                task.result = None
                self._failed(step, task, record, exc, t0, t1, hook_called=True)
                return
            except BaseException as exc:
                if not getattr(exc, "flowdsl_committed", False):
                    task.status, task.result = RUNNING, None  # not done: it stops the run
                    raise
                arrived = exc  # recorded completed: finish it here, then stop
        context = self.context
        context._results[step.id] = result
        context._previous.add(task)  # made into entries only if read
        context._trace.add(task)
        self._keep_record(record, COMPLETED, duration, t1)
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=step.id, status=COMPLETED,
                                   attempts=task.attempts, duration=duration))
        if arrived is not None:
            raise arrived

    def _undo_writes(self, record: TaskRecord) -> None:
        """Put back what the task's writes replaced (newest first), outside any journal."""
        state = self.context.shared_state
        for _, key, replaced in reversed(record.undo):
            if replaced is MISSING:
                dict.pop(state, key, None)
            else:
                dict.__setitem__(state, key, replaced)
        record.undo = ()
        record.delta = {}

    def _failed(self, step: Any, task: TaskRun, record: TaskRecord, exc: BaseException,
                t0: float, t1: float, hook_called: bool = False) -> None:
        task.status = FAILED
        task.error = exc
        if self.restore is not None and not hook_called:
            self._restore(task)  # the task's own error is what it reports
        duration = t1 - t0
        task.duration = duration
        task.started_at = self._offset + t0
        task.ended_at = self._offset + t1
        self.context._trace.add(task)
        if self.journal is not None:
            self._journal(self.journal.task_failed, task, exc)
        if self.first_error is None:
            self.first_error = (step.id, exc)
        self.blocked[step.id] = step.id
        if step.critical and self.stopped_by is None:
            self.stopped_by = step.id
        self._keep_record(record, FAILED, duration, t1)
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=step.id, status=FAILED,
                                   attempts=task.attempts, duration=duration, error=exc))

    def _keep_record(self, record: TaskRecord, status: TaskStatus, duration: float,
                     t1: float) -> None:
        record.status = status
        record.duration = duration
        record.closed = True
        if record.delta and record.importance < 6:
            record.importance += 1
        records = self.context._records
        del records.active[record.task_id]
        records.add(record)
        self.preservation_time += perf_counter() - t1

    def _settle(self, step: Any, task: TaskRun, status: TaskStatus, reason: str) -> None:
        task.status = status
        task.reason = reason
        if self.journal is not None:
            if self.interrupted is None:
                self._journal(self.journal.task_settled, task)
            else:
                self._unsaved.append(task)
        if task.ended_at is None:
            task.ended_at = time.time()  # when it was settled
        self.context._trace.add(task)
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=step.id, status=status,
                                   attempts=task.attempts, duration=0.0, reason=reason))

    def skip(self, step: Any, task: TaskRun, cause: str) -> None:
        """SKIPPED: an upstream task failed (``cause`` names it)."""
        self.blocked[step.id] = cause
        self._settle(step, task, TaskStatus.SKIPPED, f"upstream task {cause!r} failed")

    def cancel(self, step: Any, task: TaskRun, reason: str) -> None:
        """CANCELLED before it started."""
        self._settle(step, task, TaskStatus.CANCELLED, reason)

    def stop_pending(self, step: Any, task: TaskRun) -> None:
        """After a critical failure: skip what is downstream of a failure, cancel the rest."""
        cause = self.blocking_cause(step)
        if cause is not None:
            self.skip(step, task, cause)
        else:
            self.cancel(step, task, f"critical task {self.stopped_by!r} failed")

    def close_in_flight(self, task_id: str | None = None) -> None:
        """Discard from now on the writes of one task in flight (all, without ``task_id``):
        it is about to be cancelled, and what it writes while unwinding must not count."""
        active = self.context._records.active
        if task_id is None:
            records = list(active.values())
        else:
            records = [active[task_id]] if task_id in active else []
        for record in records:
            record.closed = True

    def cancel_in_flight(self, task: TaskRun, reason: str) -> None:
        """CANCELLED while running (its async attempt was cancelled): no record is kept and
        ``restore_context`` is not called; its later writes are discarded."""
        if task.started_at is not None:
            task.ended_at = time.time()
            task.duration = max(0.0, task.ended_at - task.started_at)
        record = self.context._records.active.pop(task.id, None)
        if record is not None:
            self.context._records.forget(record, cancelled=True)
        self._settle(task.step, task, TaskStatus.CANCELLED, reason)

    def interrupt(self, exc: BaseException) -> None:
        """KeyboardInterrupt, SystemExit, CancelledError (or a runtime failure): stop now.

        The task in flight and the tasks not started are CANCELLED; what completed is kept.
        """
        self.interrupted = exc
        reason = f"run interrupted by {type(exc).__name__}"
        records = self.context._records
        for task in self.tasks.values():
            if task.status in (RUNNING, TaskStatus.RETRYING):
                if task.started_at is not None:  # its time was spent in a handler, not in flowdsl
                    task.ended_at = time.time()
                    task.duration = max(0.0, task.ended_at - task.started_at)
                record = records.active.pop(task.id, None)
                if record is not None:
                    records.forget(record, cancelled=True)  # it keeps no record
                self._settle(task.step, task, TaskStatus.CANCELLED, reason)
            elif task.status is TaskStatus.PENDING:
                self._settle(task.step, task, TaskStatus.CANCELLED, reason)

    # -- the end --------------------------------------------------------------------------
    def finish(self) -> RunResult:
        """Stop the clock, summarise, and build the `RunResult`."""
        if self.interrupted is not None:  # a store failure fails the run; an interrupt cancels it
            failed = isinstance(self.interrupted, Exception)
            status = RunStatus.FAILED if failed else RunStatus.CANCELLED
        elif self.first_error is not None:
            status = RunStatus.FAILED
        else:
            status = RunStatus.SUCCEEDED
        if self.journal is not None:
            try:
                self._journal(self.journal.run_finished, status, self._unsaved)
            except Exception:
                if self.interrupted is None:
                    raise
        wall_time = perf_counter() - self.started
        context = self.context
        summary = summarize(
            self.tasks, wall_time, self.preservation_time,
            len(context.data) + len(context.shared_state),
        )
        if self.journal is not None:
            summary["store_time"] = self.store_time
            summary["restored_tasks"] = self.restored
        failed_task, error = self.first_error if self.first_error else (None, None)
        result = RunResult(
            flow=self.plan.flow, run_id=self.run_id, status=status, results=context._results,
            tasks=self.tasks, context=context, summary=summary, error=error,
            failed_task=failed_task,
        )
        self.final = result
        if self.emit is not None:
            self.emit(RunFinished(run_id=self.run_id, flow=self.plan.flow, status=status,
                                  summary=summary))
        return result


def _interrupted(run: Run, exc: BaseException) -> None:
    run.interrupt(exc)
    try:
        exc.flowdsl_result = run.finish()  # type: ignore[attr-defined]
    except Exception:  # the original exception matters more than a failed summary
        pass


def drive(executor: Executor, run: Run) -> RunResult:
    """Execute ``run`` synchronously with ``executor``. On an interrupt (or a store failure)
    cancel what is left, attach the `RunResult` to the exception as ``flowdsl_result`` and
    re-raise it."""
    executor.configure(run)
    run.announce()
    try:
        executor.execute(run)
    except BaseException as exc:
        _interrupted(run, exc)
        raise
    return run.finish()


async def adrive(executor: Executor, run: Run) -> RunResult:
    """The async twin of `drive`."""
    executor.configure(run)
    run.announce()
    try:
        await executor.aexecute(run)
    except BaseException as exc:
        _interrupted(run, exc)
        raise
    return run.finish()
