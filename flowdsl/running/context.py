"""`TaskContext`: the context a run builds, with incremental preservation.

The shared state is a dict whose every write is numbered and journalled into the record of
the task that made it (its delta, plus the values it replaced). Records are bounded by the
strategy's ``max_context_items``: beyond it the least important, oldest record is evicted
(amortised O(1) per task). From the records, ``snapshot(task_id)`` rebuilds the shared
state a task started with.
"""

from __future__ import annotations

import itertools
import time
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

from ..errors import ContextPrunedError, UntrackedWriteError
from ..declaring.spec import MISSING
from .records import Records, TaskRecord

__all__ = ["DELETED", "TaskContext", "SharedState", "TaskRecord", "CurrentTask", "TaskSlot",
           "IDLE", "current_task"]


class _Deleted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETED"

    def __reduce__(self) -> str:  # unpickles to the one DELETED (deltas travel to/from workers)
        return "DELETED"


#: Marks a deleted key in a task's delta.
DELETED: Any = _Deleted()




class CurrentTask:
    """The task attempt running in this thread or asyncio task (see `current_task`)."""

    __slots__ = ("task_id", "run_id", "attempt", "record", "live", "index")

    def __init__(self, task_id: str, run_id: str, record: "TaskRecord", attempt: int = 1,
                 index: int | None = None) -> None:
        self.task_id = task_id
        self.run_id = run_id
        self.attempt = attempt
        self.record = record
        self.index = index  # the element of a mapped task, None for a whole task
        self.live = True  # False once abandoned (timeout) or cancelled: its writes are discarded

    @property
    def idempotency_key(self) -> str:
        """``"<run_id>:<task_id>"``: the same across retries (and resumes)."""
        return f"{self.run_id}:{self.task_id}"

    def __repr__(self) -> str:
        return f"CurrentTask(task_id={self.task_id!r}, attempt={self.attempt}, run_id={self.run_id!r})"


class TaskSlot(CurrentTask):
    """The one `CurrentTask` of a run's inline units (the sequential executor's): set in the
    context variable once per run and re-pointed at each task, rather than a new object and a
    context-variable set and reset per task (~4,500 instructions a task, issue 16). Between
    tasks its record is `IDLE`: no task runs. `current_task()` hands out a copy, so what a
    handler keeps stays its own.

    A thread a handler starts with a copy of its context sees the slot too: like a thread
    started without one, its writes go to whichever inline task is running then."""

    __slots__ = ()

    def snapshot(self) -> CurrentTask | None:
        """A copy of what runs now (None between tasks)."""
        if self.record is IDLE:
            return None
        return CurrentTask(self.task_id, self.run_id, self.record, self.attempt, self.index)


_current: ContextVar[CurrentTask | None] = ContextVar("flowdsl_current_task", default=None)


def current_task() -> CurrentTask | None:
    """The task attempt running here (task id, attempt number, idempotency key), or None."""
    current = _current.get()
    if type(current) is TaskSlot:
        return current.snapshot()
    return current


#: The record of a `TaskSlot` between tasks: nobody's (closed, so nothing is kept under it).
IDLE = TaskRecord("", 0, -1)
IDLE.closed = True


class SharedState(dict):  # type: ignore[type-arg]
    """The run's live shared state: a dict whose writes are journalled per task.

    Reads cost what a dict read costs. A write made while a task runs goes into that task's
    record; a write from an attempt abandoned at its timeout (or cancelled) is discarded.
    While a run goes on (``in_flight`` set), a write from a thread that runs no task (one a
    handler started itself, which does not inherit the task's context variables) goes to the
    one task in flight, or raises `UntrackedWriteError` naming the key when there are several
    or none: it is never lost silently.
    """

    __slots__ = ("sequence", "in_flight")

    def __init__(self, sequence: Iterator[int] | None = None) -> None:
        # (no ``super().__init__()``: ``dict.__new__`` made it empty, and ``dict.__init__``
        # with no arguments does nothing)
        #: numbers every write of the run (one sequence, whatever the concurrency)
        self.sequence = sequence if sequence is not None else itertools.count()
        #: the records of the tasks in flight while a run goes on; None outside a run
        self.in_flight: dict[str, TaskRecord] | None = None

    def _untracked(self, key: Any) -> CurrentTask | None:
        """Who owns a write made where no task runs: None outside a run (a plain write)."""
        in_flight = self.in_flight
        if in_flight is None:
            return None
        records = list(in_flight.values())
        if len(records) != 1:
            raise UntrackedWriteError(key, tuple(sorted(in_flight)))
        record = records[0]  # (its writes are discarded once it is closed, like its own)
        return CurrentTask(record.task_id, "", record)

    def _journal(self, key: Any, new: Any) -> bool:
        """Record a write about to happen; False means: discard it."""
        current = _current.get()
        if current is None or current.record is IDLE:
            current = self._untracked(key)
            if current is None:
                return True
        record = current.record
        if not current.live or record.closed:
            return False
        record.wrote(next(self.sequence), key, dict.get(self, key, MISSING), new)
        return True

    def __setitem__(self, key: Any, value: Any) -> None:
        # `_journal` inlined: the one write every `produces` key makes
        current = _current.get()
        if current is not None and current.record is IDLE:  # an inline slot between tasks
            current = None
        if current is None and self.in_flight is not None:
            current = self._untracked(key)
        if current is not None:
            record = current.record
            if not current.live or record.closed:
                return
            record.wrote(next(self.sequence), key, dict.get(self, key, MISSING), value)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        if self._journal(key, DELETED):
            dict.__delitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> SharedState:  # type: ignore[misc]
        self.update(other)
        return self

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return dict.__getitem__(self, key)
        self[key] = default
        return default

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            value = dict.__getitem__(self, key)
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            raise KeyError("popitem(): shared state is empty")
        key = next(reversed(self.keys()))
        value = dict.__getitem__(self, key)
        del self[key]
        return key, value

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def apply(self, delta: Mapping[Any, Any]) -> None:
        """Replay a delta (key -> new value or `DELETED`) as writes of the running task; a
        deletion is recorded even when the key is absent here (it was written, then deleted)."""
        for key, value in delta.items():
            if value is DELETED:
                if self._journal(key, DELETED):
                    dict.pop(self, key, None)
            else:
                self[key] = value

    def copy(self) -> dict[Any, Any]:
        """A plain dict copy (not journalled)."""
        return dict(self)


class Outcome(Protocol):
    """A task's outcome as the runtime adds it (a `TaskRun`): its entries are made from it
    only when ``previous_results`` or ``execution_trace`` is first read."""

    def previous_entry(self) -> dict[str, Any]: ...

    def trace_entry(self) -> dict[str, Any]: ...


def _previous_entry(outcome: Outcome) -> dict[str, Any]:
    return outcome.previous_entry()


def _trace_entry(outcome: Outcome) -> dict[str, Any]:
    return outcome.trace_entry()


class _Entries:
    """A list of dict entries whose runtime-made ones are built only when first read.

    The runtime adds the task outcome itself (no allocation per task); ``entries()`` turns
    each into its dict with ``make`` on first read, and from then on adds dicts.
    """

    __slots__ = ("_log", "_made", "_make", "add")

    def __init__(self, make: Callable[[Outcome], dict[str, Any]]) -> None:
        self._log: list[dict[str, Any] | Outcome] | None = []  # dicts and outcomes
        self._made: list[dict[str, Any]] = []
        self._make = make
        #: ``add(item)``: a dict entry, or an outcome to make one from. Until the first read
        #: it is the pending list's own ``append`` (the runtime adds two outcomes per task:
        #: no Python call for them, issue 16); from then on `_add_made`.
        self.add: Callable[[dict[str, Any] | Outcome], None] = self._log.append

    def __getstate__(self) -> tuple[Any, ...]:  # copied or pickled: `add` is bound anew
        return self._log, self._made, self._make

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._log, self._made, self._make = state
        self.add = self._add_made if self._log is None else self._log.append

    def _add_made(self, item: dict[str, Any] | Outcome) -> None:
        self._made.append(item if isinstance(item, dict) else self._make(item))

    def entries(self) -> list[dict[str, Any]]:
        if self._log is not None:
            make = self._make
            self._made = [item if isinstance(item, dict) else make(item) for item in self._log]
            self._log = None
            self.add = self._add_made
        return self._made


_NO_RESOURCES: Mapping[str, Any] = MappingProxyType({})  # (read-only, empty: shared)


class TaskContext:
    """The context of one run, with the seed program's fields and methods.

    ``task_id`` is the run id; ``data`` a read-only view of the caller's initial mapping;
    ``shared_state`` the live shared state; ``previous_results`` one entry per completed task;
    ``execution_trace`` one entry per task outcome and retry; ``records`` task id -> record;
    ``resources`` the run's live objects (``resources=``), never stored or copied.
    """

    __slots__ = (
        "task_id", "data", "metadata", "shared_state", "results", "book",
        "previous_log", "trace_log", "resources",
    )

    def __init__(
        self,
        task_id: str = "",
        data: Mapping[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        max_records: int = 1000,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        self.task_id = task_id
        self.data: Mapping[str, Any] = MappingProxyType(data if data is not None else {})
        self.resources: Mapping[str, Any] = MappingProxyType(dict(resources)) if resources \
            else _NO_RESOURCES
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.shared_state = SharedState()
        # kept by the runtime (its hot path writes them directly):
        self.previous_log = _Entries(_previous_entry)  # -> previous_results
        self.trace_log = _Entries(_trace_entry)  # -> execution_trace
        self.results: dict[str, Any] = {}  # task id -> result of each completed task
        self.book = Records(max_records)  # task records, bounded, and those in flight

    @property
    def previous_results(self) -> list[dict[str, Any]]:
        """One entry per completed task, in completion order: ``task_id``, ``result``,
        ``metadata``, ``timestamp``."""
        return self.previous_log.entries()

    @property
    def execution_trace(self) -> list[dict[str, Any]]:
        """One entry per task outcome, per retry, and per ``log_execution``: ``task_id``,
        ``action``, ``details``, ``timestamp``."""
        return self.trace_log.entries()

    # -- kept by the runtime ------------------------------------------------------------
    def seed(self, previous: Iterable[dict[str, Any]], results: Mapping[str, Any]) -> None:
        """Start a copy of a run's context (on a Dask worker) from its entries and results."""
        for entry in previous:
            self.previous_log.add(entry)
        self.results.update(results)

    def forget_in_flight(self, task_id: str) -> None:
        """A task in flight was cancelled: it keeps no record."""
        record = self.book.active.pop(task_id, None)
        if record is not None:
            self.book.forget(record)

    @property
    def records(self) -> Mapping[str, TaskRecord]:
        """Task id -> record, for the tasks that ran and whose record was not pruned."""
        return self.book.view

    @property
    def idempotency_key(self) -> str | None:
        """The running task's ``"<run_id>:<task_id>"`` (None outside a task)."""
        current = current_task()
        return current.idempotency_key if current is not None else None

    def add_result(self, task_id: str, result: Any, metadata: dict[str, Any] | None = None) -> None:
        """Record ``task_id``'s result and append it to ``previous_results``."""
        self.results[task_id] = result
        self.previous_log.add(
            {"task_id": task_id, "result": result, "metadata": metadata or {}, "timestamp": time.time()}
        )

    def get_result(self, task_id: str, default: Any = None) -> Any:
        """The result of a completed task, else ``default``."""
        return self.results.get(task_id, default)

    def update_shared_state(self, key: str, value: Any) -> None:
        """Write ``key`` to the shared state (part of the running task's delta)."""
        self.shared_state[key] = value

    def log_execution(self, task_id: str, action: str, details: dict[str, Any] | None = None) -> None:
        """Append an entry of your own to ``execution_trace``."""
        self.trace_log.add(
            {"task_id": task_id, "action": action, "details": details or {}, "timestamp": time.time()}
        )

    def _record(self, task_id: str) -> TaskRecord:
        records = self.book
        record = records.record(task_id)
        if record is not None:
            return record
        if records.was_pruned(task_id):
            raise ContextPrunedError(task_id, cancelled=task_id in records.cancelled)
        raise KeyError(f"task {task_id!r} has no record: it did not run in this context")

    def delta(self, task_id: str) -> dict[str, Any]:
        """The keys ``task_id`` wrote, with their new values (`DELETED` for deletions)."""
        return dict(self._record(task_id).delta)

    def snapshot(self, task_id: str) -> dict[str, Any]:
        """The shared state as it was when ``task_id`` started, rebuilt from the records."""
        record = self._record(task_id)
        start = record.start_seq
        records = self.book
        if records.pruned_seq > start:
            culprit = next(t for t, seq in records.pruned.items() if seq > start)
            raise ContextPrunedError(task_id, culprit, cancelled=culprit in records.cancelled)
        writes = sorted(
            (entry for rec in records.all() for entry in rec.undo() if entry[0] > start),
            key=lambda entry: entry[0],
            reverse=True,
        )
        state = dict(self.shared_state)
        for _, key, replaced in writes:
            if replaced is MISSING:
                state.pop(key, None)
            else:
                state[key] = replaced
        return state

    def __repr__(self) -> str:
        return (
            f"TaskContext(task_id={self.task_id!r}, data={len(self.data)} keys, "
            f"shared_state={len(self.shared_state)} keys, previous_results="
            f"{len(self.previous_results)}, records={len(self.records)})"
        )
