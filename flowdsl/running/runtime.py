"""What happens to a task: the run state machine.

A `Run` owns one execution of a plan: it binds a unit's arguments, calls its handler under its
policy (retries through tenacity, timeouts, produced keys), publishes the result, records the
delta and settles the status, journalling and emitting events on the way. *When* and *where*
each attempt runs is the executors' business (``flowdsl.executors``): they pick the next
unit of work (a `TaskRun`: the attempts of one task, or of one element of a mapped task) and
lend their `Means`. The run knows nothing of executors, logging sinks, stores or progress
bars: it calls a `Journal` and emits typed events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from time import perf_counter
from typing import Any


from ..compiling.plan import Plan, Step
from ..declaring.spec import MISSING
from ..errors import SerializationError
from ..status import TaskStatus
from .attempts import Args, Kwargs, Means, check_produces
from .context import IDLE, CurrentTask, TaskContext, TaskRecord, TaskSlot, _current
from .gate import CONDITION_FALSE, Gate, condition_holds
from .events import (Emit, Observer, RunStarted, TaskFinished, TaskStarted, emitter)
from .journal import Journal
from .mapping import Mapped, MappingRun
from .caching import CachingRun
from .retrying import RetryingRun
from .settling import CTRL_C, SettlingRun
from .result import RESTORED, RunResult, TaskRun, hot_fields
from .strategies import DEFAULT_MAX_RECORDS, ContextPreservationStrategy, active_hooks

__all__ = ["Run", "RESTORED", "CTRL_C"]

_NO_KWARGS: Kwargs = {}  # (a handler's ``**kwargs`` is a dict of its own: never written)
_setdefault = dict.setdefault  # (`SharedState` journals its own `setdefault`: not this one)
PENDING, RUNNING, COMPLETED, FAILED = (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED,
                                       TaskStatus.FAILED)


def _clock_offset() -> float:
    """``time.time() - perf_counter()``, from a reading of the wall clock between two of
    ``perf_counter`` taken within 20 µs of each other (a thread switch between the reads would
    shift every task time); else the tightest of three readings."""
    best = (float("inf"), 0.0)
    for _ in range(3):
        before = perf_counter()
        wall = time.time()
        after = perf_counter()
        if after - before < 20e-6:  # the usual case: one reading (issue 16)
            return wall - (before + after) / 2
        if after - before < best[0]:
            best = (after - before, wall - (before + after) / 2)
    return best[1]

class Run(SettlingRun, MappingRun, CachingRun, RetryingRun):
    """One execution of a plan: its context, its units of work, its bookkeeping.

    A unit's status changes only here: PENDING -> RUNNING (`_begin`, each attempt) ->
    RETRYING between attempts (`_retry`) -> COMPLETED (`_completed`) or FAILED (`_failed`);
    PENDING -> SKIPPED or CANCELLED, and RUNNING -> CANCELLED (`_settle`); COMPLETED from the
    store on resume (`restore_completed`).
    """

    __slots__ = ()  # the fields: `RunFields`

    def __init__(
        self,
        plan: Plan,
        initial: Mapping[str, Any],
        run_id: str,
        strategy: ContextPreservationStrategy,
        observers: Iterable[Observer | Emit] = (),
        journal: Journal | None = None,
        started: float | None = None,
        history: Callable[[], Mapping[str, list[float]]] = dict,
        resources: Mapping[str, Any] | None = None,
        cache: bool = True,
    ) -> None:
        self.started = perf_counter() if started is None else started  # the run's wall clock
        self.plan = plan
        self.run_id = run_id
        limit = getattr(strategy, "max_context_items", DEFAULT_MAX_RECORDS)
        self.context = TaskContext(run_id, initial, max_records=limit, resources=resources)
        # until finish(): a write from a thread a handler started goes to the task in flight
        self.context.shared_state.in_flight = self.context.book.active
        #: The units of work, in plan order: one per task (a mapped task adds its
        #: elements as it starts: see `MappingRun.start_map`).
        hot = plan.derived.get("hot")  # made once per plan (see `hot_fields`)
        if hot is None:
            hot = plan.derived["hot"] = tuple(hot_fields(step) for step in plan.steps)
        self.units = [TaskRun(step, None, fields) for step, fields in zip(plan.steps, hot)]
        self.tasks: dict[str, TaskRun] = dict(zip(plan.order, self.units))
        for task_id in plan.mapped:
            self.tasks[task_id].elements = []
        self.preserve, self.restore = active_hooks(strategy)
        self.emit = emitter(observers) if observers else None  # (an empty list: no call)
        self.gate = Gate(self.tasks, plan.index)  # trigger rules over the tasks' statuses
        #: task that ended without completing -> its origin (the gate's; see running/gate.py)
        self.blocked = self.gate.blocked
        #: whether a ready task must pass the gate: the plan has ``run_if`` tasks, or a task
        #: ended without completing (one flag, so the plain path pays one look-up per task)
        self.gated = plan.conditional
        self.stopped_by: str | None = None  # the critical task whose failure stopped the run
        self.interrupted: BaseException | None = None
        self.first_error: tuple[str, BaseException] | None = None
        self.final: RunResult | None = None  # set by finish()
        self.preservation_time = 0.0
        #: tasks completed by `_completed` and the sum of their durations: when every task
        #: completed here one at a time (``in_order``, set by an executor that runs them
        #: so), the summary's times without a loop over the tasks (see `summarize`)
        self.completed_here = 0
        self.completed_time = 0.0
        self.in_order = False
        #: the durations of the elements completed here, and how many elements were
        #: restored or cached instead (the same summary, for mapped tasks' elements)
        self.element_time = 0.0
        self.elements_reused = 0
        self._offset = _clock_offset()  # perf_counter -> epoch seconds, taken now
        self._sequence = self.context.shared_state.sequence
        self.journal = journal
        self.store_time = journal.open_time if journal is not None else 0.0
        self.restored = 0
        self.maps: dict[str, Mapped] = {}  # mapped task in progress -> its state
        self.caching = journal is not None and cache  # cache=False: neither read nor written
        self.cached = 0
        self._unsaved: list[TaskRun] = []  # settled during an interrupt; written at finish
        #: ``() -> {task id: recent durations}``, read by adaptive scheduling only
        self.history = history
        #: names of the run's resources (``context.resources``): never stored, hashed or copied
        self.resources = frozenset(resources or ())
        #: the current task of the units `run_unit` runs (see `enter_inline`)
        self.slot = TaskSlot("", run_id, IDLE)

    def announce(self) -> None:
        """Tell observers the run starts (after any restore, so they can count it)."""
        if self.emit is not None:
            to_run = self.plan.order if not self.restored else tuple(
                task_id for task_id, task in self.tasks.items() if task.status is PENDING)
            self.emit(RunStarted(run_id=self.run_id, flow=self.plan.flow,
                                 total_tasks=len(self.plan.steps), restored=self.restored,
                                 to_run=to_run))

    # -- which units may start ------------------------------------------------------------
    def admit(self, unit: TaskRun) -> bool:
        """Whether a ready unit (every dependency ended) runs: its trigger rule, then its
        ``run_if`` predicate, evaluated here once. If not, it is settled here: SKIPPED or
        CANCELLED by its trigger, SKIPPED "condition false", or FAILED by its predicate."""
        step = unit.step
        if self.blocked:
            verdict = self.gate.verdict(step)
            if verdict is not None:
                status, origin, reason = verdict
                self.blocked[step.id] = origin
                self._settle(unit, status, reason)
                return False
        if step.run_if is None:
            return True
        t0 = perf_counter()
        try:
            if condition_holds(step, self.context):
                return True
        except Exception as exc:  # fails the task: not retried, the handler never called
            self._failed(unit, None, exc, t0, perf_counter())
            return False
        self.blocked[step.id] = step.id
        self._settle(unit, TaskStatus.SKIPPED, CONDITION_FALSE)
        return False

    # -- running one unit -----------------------------------------------------------------
    def enter_inline(self) -> Token[CurrentTask | None]:
        """Before the units this thread runs with `run_unit`: the run's `TaskSlot` becomes its
        current task, set once here and re-pointed at each task (issue 16). Returns the token
        for `leave_inline`, in the caller's ``finally`` (not a generator context manager:
        ~1 µs per run)."""
        return _current.set(self.slot)

    @staticmethod
    def leave_inline(token: Token[CurrentTask | None]) -> None:
        """The end of `enter_inline`'s span."""
        _current.reset(token)

    def _begin(self, unit: TaskRun) -> tuple[TaskRecord, CurrentTask, Token[CurrentTask | None]]:
        step = unit.step
        record: TaskRecord = unit  # its own record
        unit.start_seq = next(self._sequence)
        current = CurrentTask(step.id, self.run_id, record, 1, unit.index)
        unit.status = RUNNING
        self.context.book.active[step.id] = record
        if self.journal is not None:
            self._journal(self.journal.task_started, unit)
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

    def _enter(self, unit: TaskRun, record: TaskRecord, t0: float) -> tuple[float, Args, Kwargs]:
        """The strategy's ``preserve_context``, then the handler's arguments; returns the
        first attempt's start time with them (binding is orchestration, not handler time)."""
        if self.preserve is not None:
            self.preserve(self.context, unit)
            t0, hook_start = perf_counter(), t0
            self.preservation_time += t0 - hook_start
        args, kwargs, record.read_values = unit.step.bind(self.context)
        t0 = perf_counter()
        unit.started_at = self._offset + t0
        return t0, args, kwargs

    def run_unit(self, unit: TaskRun, sleep: Callable[[float], None] = time.sleep) -> None:
        """Run one unit in this thread (a sync handler; no event loop involved), within
        `enter_inline`; ``sleep`` waits between retries."""
        step = unit.step
        # the step's fields read here, in one tuple unpacked at once: a Step is a NamedTuple,
        # whose attribute reads are not specialised in CPython 3.11 (~220 instructions each)
        bind, handler, produces, direct, cached, single = unit.hot or hot_fields(step)
        if cached and self.caching and self.from_cache(unit):
            return
        # `_begin(unit)` inlined: a call and a tuple per task less (~700 instructions)
        task_id = unit.task_id
        record: TaskRecord = unit  # its own record: no object per task
        unit.start_seq = next(self._sequence)
        unit.status = RUNNING
        self.context.book.active[task_id] = record
        if self.journal is not None:
            self._journal(self.journal.task_started, unit)
        if self.emit is not None:
            self.emit(TaskStarted(run_id=self.run_id, task_id=task_id))
        current = self.slot  # re-pointed, not made and set anew: see `TaskSlot`
        current.task_id, current.record, current.attempt, current.index = \
            task_id, record, 1, unit.index
        t0 = 0.0  # read after binding; a failed binding has no handler time (see `_failed`)
        try:
            if self.preserve is None:  # `_enter` inlined for the usual case: a call per task less
                if single is not None:  # one argument: read here, not by calling the binder
                    source, key = single  # (see `compiling.binding.single`)
                    if key is None:
                        args = (self.context.results[source],)
                    else:  # a declared input: the arguments are its reads too
                        args = record.read_values = (self.context.results[source][key],)
                    kwargs = _NO_KWARGS
                else:
                    args, kwargs, record.read_values = bind(self.context)
                t0 = perf_counter()
                unit.started_at = self._offset + t0
            else:
                t0, args, kwargs = self._enter(unit, record, perf_counter())
            if direct:
                unit.attempts = 1
                result = handler(*args, **kwargs)
                for key in produces:  # `check_produces` called only off the usual dict result
                    if type(result) is not dict or key not in result:
                        check_produces(step, result)  # raises, naming the task and key
            else:
                result = self._call_sync(unit, current, args, kwargs, sleep)
            t1 = perf_counter()  # the last attempt ended
            if produces:  # (`_write_produced`, inlined on the sync path)
                # the writer is this task (`current`): each write is journalled straight into
                # its record as `SharedState.__setitem__` would, without that call and its
                # context-variable look-up per key (issue 16); a closed record keeps none
                state = self.context.shared_state
                if current.live and not record.closed:
                    sequence = state.sequence
                    # `record.wrote` inlined too (a call per key less)
                    writes: Any = record.writes
                    if not writes and len(produces) == 1:
                        # the usual: one key, the task's only write: its writes are that
                        # one tuple (a list and its item array fewer to allocate and collect)
                        key = produces[0]
                        value = result[key]
                        if key in state:  # a key replaced
                            replaced = dict.get(state, key)
                            dict.__setitem__(state, key, value)
                        else:  # a new key: `dict.setdefault` sets it for half the cost of
                            # `dict.__setitem__`'s slot wrapper (~500 instructions less);
                            # if another thread set it meanwhile, the last write wins as ever
                            replaced = MISSING
                            if _setdefault(state, key, value) is not value:
                                dict.__setitem__(state, key, value)
                        record.writes = (next(sequence), key, replaced, value)
                    else:
                        writes = list(writes)  # (a list from here: writes may follow)
                        for key in produces:
                            value = result[key]
                            writes += (next(sequence), key, state.get(key, MISSING), value)
                            dict.__setitem__(state, key, value)
                        record.writes = writes
        except Exception as exc:
            t1 = perf_counter()
            self._failed(unit, record, exc, t0 or t1, t1)
        else:
            self._completed(unit, record, result, t0, t1)
        finally:
            current.record = IDLE

    async def arun_unit(self, unit: TaskRun, means: Means) -> None:
        """Run one unit from the event loop, each attempt through ``means.submit`` (on the
        loop, in a thread, on a Dask worker: the executor's choice)."""
        step = unit.step
        if self.caching and step.cache is not None and self.from_cache(unit):
            return
        record, current, token = self._begin(unit)
        t0 = perf_counter()
        try:
            t0, args, kwargs = self._enter(unit, record, t0)
            result = await self._call_async(unit, current, args, kwargs, means)
            t1 = perf_counter()  # the last attempt ended
            if step.produces:
                self._write_produced(step, result)
        except Exception as exc:
            self._failed(unit, record, exc, t0, perf_counter())
        else:
            self._completed(unit, record, result, t0, t1)
        finally:
            _current.reset(token)

    def _write_produced(self, step: Step, result: Mapping[str, Any]) -> None:
        state = self.context.shared_state
        for key in step.produces:
            state[key] = result[key]

    # -- outcomes -------------------------------------------------------------------------
    def _call_restore(self, task: TaskRun) -> BaseException | None:
        assert self.restore is not None
        try:
            self.restore(self.context, task)
        except Exception as exc:
            return exc
        return None

    def _completed(self, unit: TaskRun, record: TaskRecord, result: Any, t0: float,
                   t1: float) -> None:
        task = unit
        task.status = COMPLETED
        task.result = result
        duration = t1 - t0
        task.duration = duration
        task.ended_at = self._offset + t1
        if self.restore is not None:
            hook_error = self._call_restore(task)
            if hook_error is not None:  # a strategy that fails fails the task
                task.result = None
                self._failed(unit, record, hook_error, t0, t1, hook_called=True)
                return
        arrived: BaseException | None = None  # an interrupt that came once it was committed
        if self.journal is not None:
            try:
                self._journal(self.journal.task_completed, task, result, record.delta)
            except SerializationError as exc:  # the store vetoes: not retried, writes undone
                self._undo_writes(record)
                task.result = None
                self._failed(unit, record, exc, t0, t1, hook_called=True)
                return
            except BaseException as exc:
                if not getattr(exc, "flowdsl_committed", False):
                    task.status, task.result = RUNNING, None  # not done: it stops the run
                    raise
                arrived = exc  # recorded completed: finish it here, then stop
        context = self.context
        task_id = task.task_id
        context.results[task_id] = result
        context.previous_log.add(task)  # made into entries only if read
        context.trace_log.add(task)
        # `_keep_record(record, COMPLETED, duration, t1)` inlined: a call per task less
        # (the record is the unit: its status and duration are set above)
        record.closed = True
        if record.writes and record.importance < 6:
            record.importance += 1
        book = context.book
        del book.active[task_id]
        book.by_task[task_id] = record  # `book.add(record)` inlined: a call less
        book.buckets[record.importance].append(task_id)
        if len(book.by_task) > book.high:
            book.trim()
        self.completed_here += 1
        self.completed_time += duration
        self.preservation_time += perf_counter() - t1
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=task_id, status=COMPLETED,
                                   attempts=task.attempts, duration=duration, result=result,
                                   attempt_times=tuple(task.attempt_times())))
        if arrived is not None:
            raise arrived

    def _undo_writes(self, record: TaskRecord) -> None:
        """Put back what the task's writes replaced (newest first), outside any journal."""
        state = self.context.shared_state
        for _, key, replaced in record.undo():
            if replaced is MISSING:
                dict.pop(state, key, None)
            else:
                dict.__setitem__(state, key, replaced)
        record.writes = ()

    def _failed(self, unit: TaskRun, record: TaskRecord | None, exc: BaseException, t0: float,
                t1: float, hook_called: bool = False) -> None:
        """FAILED after its last attempt (``record`` None: its predicate failed, it never
        started, so it keeps no record and no strategy hook is called)."""
        step, task = unit.step, unit
        task.status = FAILED
        task.error = exc
        if self.restore is not None and not hook_called and record is not None:
            self._call_restore(task)  # the task's own error is what it reports
        duration = t1 - t0
        task.duration = duration
        task.started_at = self._offset + t0
        task.ended_at = self._offset + t1
        self.context.trace_log.add(task)
        if self.journal is not None:
            self._journal(self.journal.task_failed, task, exc)
        if self.first_error is None:
            self.first_error = (step.id, exc)
        self.blocked[step.id] = step.id
        self.gated = True
        if step.critical and self.stopped_by is None:
            self.stopped_by = step.id
        if record is not None:
            self._keep_record(record, FAILED, duration, t1)
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=step.id, status=FAILED,
                                   attempts=task.attempts, duration=duration, error=exc,
                                   attempt_times=tuple(task.attempt_times())))

    def _keep_record(self, record: TaskRecord, status: TaskStatus, duration: float,
                     t1: float) -> None:
        record.status = status
        record.duration = duration
        book = self.context.book
        del book.active[record.task_id]
        book.keep(record)
        self.preservation_time += perf_counter() - t1
