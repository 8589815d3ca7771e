"""Mapping: one task, many elements (``@flow.task(map_over="param")``).

A mapped task starts once: its arguments are bound once, its mapped values checked and split
into elements (`map_columns`), and each element becomes a unit of work of its own (a
`TaskRun` with an ``index``): its own attempts, retries, timeout, status, duration and
concurrency slot. When the last element has settled the task completes with the list of
element results (its produced keys written once), or fails. `MappingRun` is the part of the
run (`flowdsl.running.runtime.Run`) that does this; executors start a map with `start_map`
and run its elements with `run_element` / `arun_element`.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .fields import RunFields
from ..compiling.plan import Step
from ..errors import MapError, SerializationError
from ..status import TaskStatus
from .attempts import Args, Kwargs, Means, check_produces
from .context import IDLE, CurrentTask, TaskContext, TaskRecord, TaskSlot, _current
from .events import ElementFinished, Emit, TaskMapped
from .journal import Journal
from .result import TaskRun, hot_fields

__all__ = ["Mapped", "MappingRun", "map_columns", "map_digest"]

PENDING, RUNNING, COMPLETED, FAILED = (TaskStatus.PENDING, TaskStatus.RUNNING,
                                       TaskStatus.COMPLETED, TaskStatus.FAILED)
CANCELLED = TaskStatus.CANCELLED
#: The reason of an element brought back completed from the run store.
RESTORED = "restored from the run store"


def map_columns(step: Step, args: Args, kwargs: Kwargs) -> list[list[Any]]:
    """Each mapped parameter's bound value as a list (one column per parameter, zipped by
    position); `MapError` for a value that cannot be mapped or columns of unequal lengths."""
    columns: list[list[Any]] = []
    for name, where in zip(step.map_over, step.map_positions):
        value = args[where] if isinstance(where, int) else kwargs[where]
        if isinstance(value, (str, bytes, bytearray, Mapping)):
            raise MapError(step.id, [name], [None],
                           f"parameter {name!r} is a {type(value).__name__}, which is not "
                           "mapped (pass a list of the elements)")
        try:
            columns.append(list(value))
        except TypeError:
            raise MapError(step.id, [name], [None],
                           f"parameter {name!r} is a {type(value).__name__}, which is not "
                           "iterable") from None
    lengths = [len(column) for column in columns]
    if len(set(lengths)) > 1:
        shown = ", ".join(f"{name}: {length}" for name, length in zip(step.map_over, lengths))
        raise MapError(step.id, step.map_over, lengths,
                       f"zipped parameters have unequal lengths ({shown})")
    return columns


def _storable(value: Any) -> Any:
    """An argument as hashed: the live context (or the seed's ``task_input``) stands out."""
    if isinstance(value, TaskContext) or (type(value) is dict and "context" in value
                                          and isinstance(value["context"], TaskContext)):
        return None
    return value


def map_digest(columns: list[list[Any]], args: Args, kwargs: Kwargs) -> str | None:
    """A digest of what a map was started with (its columns and its other arguments), so a
    resumed map restores its completed elements only when the values are the same; None when
    they cannot be pickled (nothing is then restored)."""
    try:
        blob = pickle.dumps((columns, [_storable(a) for a in args],
                             sorted((k, _storable(v)) for k, v in kwargs.items())), protocol=4)
    except Exception:
        return None
    return hashlib.sha256(blob).hexdigest()


class Mapped:
    """The run state of one started mapped task: its bound arguments, its columns, its
    record (every element writes under it) and how many elements are still to settle."""

    __slots__ = ("unit", "record", "args", "kwargs", "positions", "columns", "t0", "digest",
                 "remaining", "hot", "column", "troubled")

    def __init__(self, unit: TaskRun, record: TaskRecord, args: Args, kwargs: Kwargs,
                 columns: list[list[Any]], t0: float, digest: str | None) -> None:
        self.unit = unit
        self.record = record
        self.args = args
        self.kwargs = kwargs
        self.positions = unit.step.map_positions
        self.columns = columns
        self.t0 = t0
        self.digest = digest
        self.remaining = 0
        #: an element failed or was cancelled (else, once all settled, every one completed)
        self.troubled = False
        #: the task's `hot_fields`, which its elements run with
        self.hot = unit.hot or hot_fields(unit.step)
        #: the column of the one mapped parameter when it is the one argument, else None
        self.column = columns[0] if len(args) == 1 and not kwargs \
            and self.positions == (0,) else None

    def arguments(self, index: int) -> tuple[Args, Kwargs]:
        """The arguments of element ``index``: the task's, each mapped one replaced."""
        if self.column is not None:  # the usual shape: one parameter, mapped
            return (self.column[index],), self.kwargs
        args, kwargs = list(self.args), self.kwargs
        copied = False
        for where, column in zip(self.positions, self.columns):
            if isinstance(where, int):
                args[where] = column[index]
            else:
                if not copied:
                    kwargs, copied = dict(kwargs), True
                kwargs[where] = column[index]
        return tuple(args), kwargs


class MappingRun(RunFields):
    """The mapped-task side of a `Run`: starting a map, running its elements, settling it."""

    __slots__ = ()  # the fields: `RunFields`

    if TYPE_CHECKING:  # provided by `Run`
        run_id: str
        journal: Journal | None
        emit: Emit | None
        stopped_by: str | None
        first_error: tuple[str, BaseException] | None
        maps: dict[str, Mapped]
        elements_reused: int
        element_time: float
        slot: TaskSlot
        _offset: float
        store_time: float
        caching: bool  # `CachingRun`'s: a store is used and the run does not say cache=False

        def element_from_cache(self, element: TaskRun, args: Args, kwargs: Kwargs,
                               digest: str | None) -> bool: ...

        def _begin(self, unit: TaskRun
                   ) -> tuple[TaskRecord, CurrentTask, Token[CurrentTask | None]]: ...
        def _enter(self, unit: TaskRun, record: TaskRecord, t0: float
                   ) -> tuple[float, Args, Kwargs]: ...
        def _journal(self, write: Callable[..., None], *args: Any) -> None: ...
        def _call_sync(self, unit: TaskRun, current: CurrentTask, args: Args, kwargs: Kwargs,
                       sleep: Callable[[float], None]) -> Any: ...
        async def _call_async(self, unit: TaskRun, current: CurrentTask, args: Args,
                              kwargs: Kwargs, means: Means) -> Any: ...
        def _write_produced(self, step: Step, result: Mapping[str, Any]) -> None: ...
        def _completed(self, unit: TaskRun, record: TaskRecord, result: Any, t0: float,
                       t1: float) -> None: ...
        def _failed(self, unit: TaskRun, record: TaskRecord, exc: BaseException, t0: float,
                    t1: float, hook_called: bool = False) -> None: ...
        def _drop_in_flight(self, task: TaskRun) -> None: ...
        def _settle(self, task: TaskRun, status: TaskStatus, reason: str) -> None: ...

    # -- starting ---------------------------------------------------------------------------
    def start_map(self, unit: TaskRun) -> list[TaskRun]:
        """Start mapped task ``unit``: bind its arguments once, check and split its mapped
        values, restore elements completed in an earlier session; return the elements to
        run (none when the task already settled: `MapError`, empty, all restored)."""
        step = unit.step
        record, current, token = self._begin(unit)
        t0 = perf_counter()
        try:
            t0, args, kwargs = self._enter(unit, record, t0)
            columns = map_columns(step, args, kwargs)
        except Exception as exc:  # not retried: no element ran
            unit.elements = []
            self._failed(unit, record, exc, t0, perf_counter())
            return []
        finally:
            _current.reset(token)
        count = len(columns[0])
        journal = self.journal
        digest = map_digest(columns, args, kwargs) if journal is not None else None
        mapped = Mapped(unit, record, args, kwargs, columns, t0, digest)
        self.maps[step.id] = mapped
        unit.elements = elements = [TaskRun(step, index) for index in range(count)]
        restored = self._restore_elements(elements, digest) if journal is not None else 0
        self.elements_reused += restored
        if journal is not None:
            self._journal(journal.map_started, unit, count, digest)
        if self.emit is not None:
            self.emit(TaskMapped(run_id=self.run_id, task_id=step.id, elements=count,
                                 restored=restored))
        pending = [element for element in elements if element.status is PENDING]
        mapped.remaining = len(pending)
        if not pending:
            self._finish_map(mapped)
        return pending

    def _restore_elements(self, elements: list[TaskRun], digest: str | None) -> int:
        """Bring back the elements completed in an earlier session over the same values."""
        assert self.journal is not None
        found = self.journal.restored_elements.get(elements[0].task_id, ()) if elements else ()
        restored = 0
        for entry in found:
            if digest is None or entry.digest != digest or entry.index >= len(elements):
                continue
            restore_element(elements[entry.index], entry.result, entry.attempts, entry.started,
                            entry.ended, entry.duration)
            restored += 1
        return restored

    # -- running an element -----------------------------------------------------------------
    def _element_start(self, element: TaskRun
                       ) -> tuple[Mapped, CurrentTask, Token[CurrentTask | None], Args, Kwargs]:
        mapped = self.maps[element.task_id]
        current = CurrentTask(element.task_id, self.run_id, mapped.record, 1, element.index)
        args, kwargs = mapped.arguments(element.index)  # type: ignore[arg-type]
        element.status = RUNNING
        return mapped, current, _current.set(current), args, kwargs

    def run_element(self, element: TaskRun, sleep: Callable[[float], None] = time.sleep) -> None:
        """Run one element in this thread (a sync handler), under the task's policy, within
        `Run.enter_inline` (the run's `TaskSlot` is re-pointed at it, as for a task)."""
        mapped = self.maps[element.task_id]
        index: Any = element.index
        if mapped.column is not None:  # `mapped.arguments(index)` inlined: a call less
            args, kwargs = (mapped.column[index],), mapped.kwargs
        else:
            args, kwargs = mapped.arguments(index)
        element.status = RUNNING
        current = self.slot
        current.task_id, current.record, current.attempt, current.index = \
            element.task_id, mapped.record, 1, index
        try:
            if self.caching and element.step.cache is not None and self.element_from_cache(
                    element, args, kwargs, mapped.digest):
                self._element_settled(mapped, element)
                return
            _, handler, produces, direct, _, _ = mapped.hot
            t0 = perf_counter()
            element.started_at = self._offset + t0
            try:
                if direct:  # a plain call, as in `Run.run_unit`: no attempt history
                    element.attempts = 1
                    result = handler(*args, **kwargs)
                    for key in produces:  # `check_produces` only off the usual dict result
                        if type(result) is not dict or key not in result:
                            check_produces(element.step, result)
                else:
                    result = self._call_sync(element, current, args, kwargs, sleep)
            except Exception as exc:
                self._element_failed(mapped, element, exc, t0, perf_counter())
            else:
                self._element_completed(mapped, element, result, t0, perf_counter())
        finally:
            current.record = IDLE

    async def arun_element(self, element: TaskRun, means: Means) -> None:
        """Run one element from the event loop, each attempt through ``means.submit``."""
        mapped, current, token, args, kwargs = self._element_start(element)
        if self._cached_element(mapped, element, token, args, kwargs):
            return
        t0 = perf_counter()
        element.started_at = self._offset + t0
        try:
            result = await self._call_async(element, current, args, kwargs, means)
        except Exception as exc:
            self._element_failed(mapped, element, exc, t0, perf_counter())
        else:
            self._element_completed(mapped, element, result, t0, perf_counter())
        finally:
            _current.reset(token)

    def _cached_element(self, mapped: Mapped, element: TaskRun,
                        token: Token[CurrentTask | None], args: Args, kwargs: Kwargs) -> bool:
        """The cache check of an element (a task with ``cache=``, a run with a store): on a
        hit the element is settled here, COMPLETED "cached from run <id>"."""
        if not (self.caching and element.step.cache is not None
                and self.element_from_cache(element, args, kwargs, mapped.digest)):
            return False
        _current.reset(token)
        self._element_settled(mapped, element)
        return True

    def _element_ended(self, element: TaskRun, status: TaskStatus, t0: float,
                       t1: float) -> None:
        element.status = status
        element.duration = t1 - t0
        element.ended_at = self._offset + t1
        if element.history:
            last = element.history[-1]
            last.ended = element.ended_at
            last.error = element.error

    def _element_completed(self, mapped: Mapped, element: TaskRun, result: Any, t0: float,
                           t1: float) -> None:
        element.result = result
        self.element_time += t1 - t0  # (the summary's: see `SettlingRun.finish`)
        # (``rare`` read, not ``history``: a slot, not a descriptor call per element)
        if element.rare is not None and element.rare.history or self.journal is not None \
                or self.emit is not None:
            self._element_ended(element, COMPLETED, t0, t1)
        else:  # `_element_ended` and `_element_settled` inlined: two calls an element less
            element.status = COMPLETED
            element.duration = t1 - t0
            element.ended_at = self._offset + t1
            mapped.remaining -= 1
            if mapped.remaining == 0:
                self._finish_map(mapped)
            return
        if self.journal is not None:
            try:
                self._journal(self.journal.element_completed, element, result, mapped.digest)
            except SerializationError as exc:  # the store vetoes: the element fails
                element.result = None
                self._element_failed(mapped, element, exc, t0, t1)
                return
            except BaseException as exc:
                if not getattr(exc, "flowdsl_committed", False):
                    element.status, element.result = RUNNING, None  # it stops the run
                    raise
                self._element_settled(mapped, element)
                raise
        self._element_settled(mapped, element)

    def _element_failed(self, mapped: Mapped, element: TaskRun, exc: BaseException, t0: float,
                        t1: float) -> None:
        element.error = exc
        mapped.troubled = True
        self._element_ended(element, FAILED, t0, t1)
        step = element.step
        if self.first_error is None:  # the run's first error in time
            self.first_error = (step.id, exc)
        if step.critical and self.stopped_by is None:  # the other elements are cancelled
            self.stopped_by = step.id
        if self.journal is not None:
            self._journal(self.journal.element_failed, element, exc, mapped.digest)
        self._element_settled(mapped, element)

    def _element_settled(self, mapped: Mapped, element: TaskRun) -> None:
        if self.emit is not None:
            self.emit(ElementFinished(
                run_id=self.run_id, task_id=element.task_id, index=element.index or 0,
                status=element.status, attempts=element.attempts,
                duration=element.duration or 0.0, error=element.error,
                attempt_times=tuple(element.attempt_times())))
        mapped.remaining -= 1
        if mapped.remaining == 0:
            self._finish_map(mapped)

    def element_cancelled(self, element: TaskRun, reason: str) -> None:
        """An element in flight was cancelled (a critical failure elsewhere)."""
        mapped = self.maps[element.task_id]
        if element.started_at is not None:
            element.ended_at = time.time()
            element.duration = max(0.0, element.ended_at - element.started_at)
        element.status, element.reason = CANCELLED, reason
        mapped.troubled = True
        self._element_settled(mapped, element)

    def stop_elements(self, unit: TaskRun) -> None:
        """The run stopped (a critical failure): the elements not started are CANCELLED, and
        the task settles once none is in flight."""
        mapped = self.maps.get(unit.task_id)
        if mapped is None or unit.elements is None:
            return
        reason = f"critical task {self.stopped_by!r} failed"
        mapped.troubled = True
        for element in unit.elements:
            if element.status is PENDING:
                element.status, element.reason = CANCELLED, reason
                self._element_settled(mapped, element)

    # -- settling the task ------------------------------------------------------------------
    def _finish_map(self, mapped: Mapped) -> None:
        """Every element settled: the task completes with their results, or fails."""
        unit, record = mapped.unit, mapped.record
        elements = unit.elements or []
        unit.attempts = sum([element.attempts for element in elements])
        t1 = perf_counter()  # (its attempts are its elements': see `TaskRun.attempt_times`)
        # (restored elements completed: only those that ran here can have failed)
        failed = [element for element in elements if element.status is FAILED] \
            if mapped.troubled else None
        if failed:
            first = min(failed, key=lambda element: element.ended_at or 0.0)
            assert first.error is not None
            self._failed(unit, record, first.error, mapped.t0, t1)
        elif mapped.troubled and any(element.status is CANCELLED for element in elements):
            self._drop_in_flight(unit)
            self._settle(unit, CANCELLED, f"critical task {self.stopped_by!r} failed")
        else:
            results = [element.result for element in elements]
            step = unit.step
            if step.produces:  # each key gets the list of its per-element values, once
                token = _current.set(CurrentTask(step.id, self.run_id, record))
                try:
                    self._write_produced(step, {key: [r[key] for r in results]
                                                for key in step.produces})
                finally:
                    _current.reset(token)
            self._completed(unit, record, results, mapped.t0, t1)
        del self.maps[unit.task_id]


def restore_element(element: TaskRun, result: Any, attempts: int, started: float | None,
                    ended: float | None, duration: float | None) -> None:
    """Mark ``element`` COMPLETED as recorded in an earlier session."""
    element.status = COMPLETED
    element.reason = RESTORED
    element.result = result
    element.attempts = attempts
    element.started_at, element.ended_at, element.duration = started, ended, duration


def restored_elements(step: Step, entries: Iterable[Any]) -> list[TaskRun]:
    """The elements of a mapped task restored whole (completed in an earlier session)."""
    elements = []
    for entry in sorted(entries, key=lambda entry: int(entry.index)):
        element = TaskRun(step, entry.index)
        restore_element(element, entry.result, entry.attempts, entry.started, entry.ended,
                        entry.duration)
        elements.append(element)
    return elements
