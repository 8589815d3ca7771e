"""What a run reports: one `TaskRun` per task and the `RunResult`."""

from __future__ import annotations

import os
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, overload

from .context import TaskContext, TaskRecord
from ..declaring.spec import EMPTY
from ..errors import RunFailedError
from ..status import RunStatus, TaskStatus

if TYPE_CHECKING:  # a task run points to its step (the plan sits above the results)
    from ..compiling.plan import Step

__all__ = ["Attempt", "TaskRun", "RunResult", "RESTORED", "CACHED"]

T = TypeVar("T")
_PENDING = TaskStatus.PENDING
#: The reason of a task brought back completed from the run store.
RESTORED = "restored from the run store"
#: The reason of a task completed from the cache: this prefix, then the run's id.
CACHED = "cached from run "


class Attempt:
    """One attempt of a task (or of one element): its 1-based number, its start and end
    (``time.time()`` seconds) and the error it raised, if any."""

    __slots__ = ("number", "index", "started", "ended", "error")

    def __init__(self, number: int, index: int | None, started: float,
                 ended: float | None = None, error: BaseException | None = None) -> None:
        self.number = number
        self.index = index
        self.started = started
        self.ended = ended
        self.error = error

    def __repr__(self) -> str:
        return (f"Attempt(number={self.number}, index={self.index}, started={self.started}, "
                f"ended={self.ended}, error={self.error!r})")


#: What `Run.run_unit` reads of a step, as one tuple (see `hot_fields`).
HotFields = tuple[Callable[..., Any], Callable[..., Any], tuple[str, ...], bool, bool,
                  "tuple[str, str | None] | None"]


def hot_fields(step: Step) -> HotFields:
    """``(bind, handler, produces, direct, cached, single)`` of a step: ``direct`` when an
    attempt is a plain call (no retries, no timeout), ``cached`` when it has a cache policy,
    ``single`` the one value its binder reads (see `compiling.binding.single`), if so."""
    return (step.bind, step.handler, step.produces, not step.retries and step.timeout is None,
            step.cache is not None, getattr(step.bind, "single", None))


class _Rare:
    """The fields of a `TaskRun` that most runs never set (see `TaskRun.rare`)."""

    __slots__ = ("error", "reason", "history", "elements", "cache_key")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.reason: str | None = None
        self.history: list[Attempt] | None = None
        self.elements: list[TaskRun] | None = None
        self.cache_key: str | None = None


class _RareField(Generic[T]):
    """A `TaskRun` attribute kept in ``rare``: None while ``rare`` is; setting anything but
    None makes ``rare``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""
        self.read: Callable[[_Rare], T] = attrgetter("")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.read = attrgetter(name)

    @overload
    def __get__(self, task: None, owner: type) -> _RareField[T]: ...
    @overload
    def __get__(self, task: TaskRun, owner: type) -> T | None: ...

    def __get__(self, task: TaskRun | None, owner: type) -> T | None | _RareField[T]:
        if task is None:
            return self
        rare = task.rare
        return None if rare is None else self.read(rare)

    def __set__(self, task: TaskRun, value: T | None) -> None:
        rare = task.rare
        if rare is None:
            if value is None:
                return
            rare = task.rare = _Rare()
        setattr(rare, self.name, value)


class TaskRun(TaskRecord):
    """One task of one run, and the runtime's unit of work: the attempts of (task, element
    index). ``index`` is None for a whole (unmapped) task; a mapped task will keep one
    `TaskRun` per element (``index`` 0, 1, ...), each run, retried, timed out, slotted,
    cached or settled as a unit of its own, and report them as its ``elements``.

    It carries the seed program's `Task` attribute names too (``id``, ``name``, ``priority``,
    ``dependencies``, ``context_requirements``, ``output_context_keys``, ``status``,
    ``result``, ``start_time``, ``end_time``), so a `ContextPreservationStrategy` written for
    the seed receives what it expects.

    It is its task's `TaskRecord` too (``context.records``): ``task_id``, ``reads``,
    ``delta``, ``importance``; its ``status`` and ``duration`` are the record's. A mapped
    task's elements write under the task's own record."""

    __slots__ = ("step", "index", "result", "attempts", "started_at", "ended_at", "hot", "rare")
    status: TaskStatus
    duration: float | None

    def __init__(self, step: Step, index: int | None = None,
                 hot: HotFields | None = None) -> None:
        # the record's fields (`TaskRecord.__init__` inlined: a call per task less)
        self.task_id = step.id
        self.read_values = EMPTY
        self.writes = ()
        self.importance = step.importance
        self.start_seq = -1  # set when it starts (`Run.run_unit`)
        self.closed = False
        self.step = step
        self.index = index
        self.status = _PENDING
        self.result: Any = None
        self.attempts = 0
        self.started_at: float | None = None  # time.time() of the first attempt's start
        self.ended_at: float | None = None  # time.time() of the last attempt's end
        self.duration: float | None = None  # seconds, retry waits included
        #: its step's `hot_fields`, shared by the runs of one plan (None: read from the step)
        self.hot = hot
        #: the fields most task runs never set (``error``, ``reason``, ``history``,
        #: ``elements``, ``cache_key``), in one object made at the first set: None until
        #: then. Five slots fewer per task to fill and for the collector to walk (issue 16)
        self.rare: _Rare | None = None

    def input_keys(self) -> tuple[str, ...]:
        return self.step.inputs

    id = property(lambda self: self.task_id, doc="The task's id (the seed's name for task_id).")
    error = _RareField[BaseException]("The exception of the last failed attempt (None: none).")
    reason = _RareField[str]("Why it was skipped, cancelled, restored or cached (None: it ran).")
    history = _RareField[list[Attempt]](
        "Per-attempt times, kept only on the retry/timeout path (see `attempt_times`).")
    elements = _RareField[list["TaskRun"]](
        "A mapped task's elements, in element order; None for a task without ``map_over``.")
    cache_key = _RareField[str]("The hash of its inputs when its result is to be cached (set "
                                "on a cache miss).")

    name = property(lambda self: self.step.name, doc="The task's display name.")
    priority = property(lambda self: self.step.priority, doc="Lower runs first.")
    dependencies = property(lambda self: list(self.step.dependencies), doc="Upstream task ids.")
    context_requirements = property(lambda self: list(self.step.inputs), doc="Declared inputs.")
    output_context_keys = property(lambda self: list(self.step.produces), doc="Produced keys.")
    max_retries = property(lambda self: self.step.retries, doc="Extra attempts allowed.")
    timeout_seconds = property(lambda self: self.step.timeout, doc="Seconds per attempt.")
    start_time = property(lambda self: self.started_at, doc="Alias of started_at.")
    end_time = property(lambda self: self.ended_at, doc="Alias of ended_at.")
    retry_count = property(lambda self: max(self.attempts - 1, 0), doc="Attempts after the first.")

    def _reused(self) -> dict[str, Any]:
        """``{"restored": True}`` or ``{"cached_from": run_id}`` for a completed task that
        did not run here (it has a reason)."""
        reason = self.reason or ""
        if reason.startswith(CACHED):
            return {"cached_from": reason[len(CACHED):]}
        return {"restored": True}

    def previous_entry(self) -> dict[str, Any]:
        """This completed task's ``context.previous_results`` entry."""
        metadata = self._reused() if self.reason else {
            "duration": self.duration, "attempts": self.attempts}
        return {"task_id": self.task_id, "result": self.result, "metadata": metadata,
                "timestamp": self.ended_at}

    def trace_entry(self) -> dict[str, Any]:
        """This task's outcome entry of ``context.execution_trace``."""
        status = self.status
        if status is TaskStatus.COMPLETED:
            action = "task_completed"
            details: dict[str, Any] = self._reused() if self.reason else {
                "duration": self.duration, "attempts": self.attempts}
        elif status is TaskStatus.FAILED:
            action = "task_failed"
            details = {"error": self.error_message, "attempts": self.attempts,
                       "duration": self.duration}
        else:
            action = "task_skipped" if status is TaskStatus.SKIPPED else "task_cancelled"
            details = {"reason": self.reason}
        return {"task_id": self.task_id, "action": action, "details": details,
                "timestamp": self.ended_at}

    def attempt_times(self) -> list[Attempt]:
        """Each attempt with its start, end and error. A task called directly (no retries,
        no timeout) keeps no history: its one attempt spans ``started_at`` to ``ended_at``."""
        if self.history:
            attempts = [Attempt(a.number, a.index, a.started, a.ended, a.error)
                        for a in self.history]
            last = attempts[-1]
            if last.ended is None:
                last.ended, last.error = self.ended_at, self.error
            return attempts
        if self.elements:  # a mapped task: its elements' attempts (those that ran here)
            return [attempt for element in self.elements if element.reason != RESTORED
                    for attempt in element.attempt_times()]
        if self.attempts and self.started_at is not None:
            return [Attempt(self.attempts, self.index, self.started_at, self.ended_at,
                            self.error)]
        return []

    @property
    def error_message(self) -> str | None:
        """``str(error)``, as the seed program reported it."""
        return None if self.error is None else f"{type(self.error).__name__}: {self.error}"

    def __repr__(self) -> str:
        extra = f", index={self.index}" if self.index is not None else ""
        extra += f", reason={self.reason!r}" if self.reason else ""
        if self.error is not None:
            extra += f", error={self.error!r}"
        return (
            f"TaskRun(id={self.id!r}, status={self.status.value}, attempts={self.attempts}"
            f"{extra})"
        )


def _first_line(error: BaseException | None) -> str:
    """``f"{type(e).__name__}: {e}"``, first line only (a traceback-sized message stays out)."""
    if error is None:
        return "no error recorded"
    return f"{type(error).__name__}: {error}".splitlines()[0]


class RunResult:
    """The outcome of one run: statuses, results, the context and the summary."""

    __slots__ = ("flow", "run_id", "status", "results", "tasks", "context", "summary", "error",
                 "failed_task")

    def __init__(self, flow: str, run_id: str, status: RunStatus, results: dict[str, Any],
                 tasks: dict[str, TaskRun], context: TaskContext, summary: dict[str, Any],
                 error: BaseException | None = None, failed_task: str | None = None) -> None:
        self.flow = flow
        self.run_id = run_id
        self.status = status
        self.results = results
        self.tasks = tasks
        self.context = context
        self.summary = summary
        self.error = error  # the task error that happened first in time
        self.failed_task = failed_task

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status is RunStatus.SUCCEEDED

    def raise_for_status(self) -> "RunResult":
        """Raise `RunFailedError` (chained to the first task error, carrying this result as
        ``.result``) unless the run succeeded; return the result when it did."""
        if self.status is RunStatus.SUCCEEDED:
            return self
        raise self.failure() from self.error

    def failure(self) -> RunFailedError:
        """The `RunFailedError` this result stands for (not raised, not chained): its message
        names each FAILED task with its error's first line, and counts the skipped and
        cancelled ones."""
        failed = [task for task in self.tasks.values() if task.status is TaskStatus.FAILED]
        parts = [f"task {task.id!r} failed: {_first_line(task.error)}" for task in failed]
        for status, word in ((TaskStatus.SKIPPED, "skipped"), (TaskStatus.CANCELLED, "cancelled")):
            count = sum(1 for task in self.tasks.values() if task.status is status)
            if count or status is TaskStatus.SKIPPED:
                parts.append(f"{count} task{'' if count == 1 else 's'} {word}")
        return RunFailedError(
            f"run {self.run_id} of flow {self.flow!r} {self.status.value}: " + "; ".join(parts),
            self,
        )

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """This run's HTML report (one self-contained file: DAG, Gantt chart of attempts,
        task table, errors, inputs, summary); also written to ``path`` when given."""
        from ..report import from_result, render, write

        return write(render(from_result(self)), path)

    def __repr__(self) -> str:
        return (
            f"RunResult(flow={self.flow!r}, run_id={self.run_id!r}, status={self.status.value}, "
            f"tasks={len(self.tasks)})"
        )
