"""Task records: what each task read and wrote, bounded by importance.

A `TaskRecord` keeps a task's declared inputs and its writes (flat: sequence, key, replaced,
new); `Records` keeps them for a run, at most ``limit``, evicting the least important,
oldest one at O(1) beyond it.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

from ..declaring.spec import EMPTY
from ..status import TaskStatus

__all__ = ["TaskRecord", "Records"]


class TaskRecord:
    """What one task did to the context: its declared inputs, its delta, what it replaced.

    A run's unit of work (`TaskRun`) is its task's record: one object per task, not two
    (issue 16); a record made here stands alone (a Dask worker's, the idle slot's)."""

    __slots__ = ("task_id", "reads", "writes", "duration", "status", "importance", "start_seq",
                 "closed")

    def __init__(self, task_id: str, importance: int, start_seq: int) -> None:
        self.task_id = task_id
        self.reads: Mapping[str, Any] = EMPTY
        #: its writes, flat: sequence, key, replaced value (or MISSING), new value (or
        #: DELETED), then the next write's four; a list from the first write on. Flat, not a
        #: tuple per write: one object per record instead of one per write, for the garbage
        #: collector to track and walk (issue 16); a tuple until a second write may come
        self.writes: list[Any] | tuple[Any, ...] = ()
        self.duration: float | None = 0.0
        self.status: TaskStatus | None = None
        self.importance = importance
        self.start_seq = start_seq  # the write sequence number when the task started
        self.closed = False  # True once the task ended: later writes under it are discarded

    @property
    def delta(self) -> Mapping[str, Any]:
        """Key -> new value (`DELETED` for a deletion) of each key it wrote, the last write's."""
        writes = self.writes
        if not writes:
            return EMPTY
        return {writes[i + 1]: writes[i + 3] for i in range(0, len(writes), 4)}

    def undo(self) -> Iterator[tuple[int, Any, Any]]:
        """``(sequence, key, replaced value or MISSING)`` of each write, newest first."""
        writes = self.writes
        for i in range(len(writes) - 4, -1, -4):
            yield writes[i], writes[i + 1], writes[i + 2]

    def wrote(self, sequence: int, key: Any, replaced: Any, new: Any) -> None:
        writes = self.writes
        if type(writes) is not list:  # most tasks never write: no list until the first
            self.writes = writes = list(writes)
        writes += (sequence, key, replaced, new)

    def __repr__(self) -> str:
        status = getattr(self.status, "value", self.status)
        return (
            f"TaskRecord(task_id={self.task_id!r}, status={status!r}, importance={self.importance}, "
            f"reads={dict(self.reads)!r}, delta={self.delta!r}, duration={self.duration or 0.0:.6f})"
        )


class Records:
    """Task records, bounded: beyond ``limit`` the lowest importance goes first, oldest first."""

    __slots__ = ("limit", "by_task", "view", "active", "buckets", "pruned", "pruned_seq",
                 "cancelled")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_task: dict[str, TaskRecord] = {}
        self.view: Mapping[str, TaskRecord] = MappingProxyType(self.by_task)
        self.active: dict[str, TaskRecord] = {}  # records of tasks in flight
        self.buckets: list[deque[str]] = [deque() for _ in range(7)]  # one per importance 0..6
        self.pruned: dict[str, int] = {}  # task id -> highest write sequence it held
        self.pruned_seq = -1  # highest write sequence among pruned records
        self.cancelled: set[str] = set()  # tasks cancelled in flight: they keep no record

    def add(self, record: TaskRecord) -> None:
        self.by_task[record.task_id] = record
        self.buckets[record.importance].append(record.task_id)
        if len(self.by_task) > self.limit:
            self.evict()

    def evict(self) -> None:
        """Drop the least important, oldest record: once a run has more tasks than the
        limit, one eviction per task."""
        by_task = self.by_task
        for bucket in self.buckets:
            while bucket:
                record = by_task.pop(bucket.popleft(), None)
                if record is not None:
                    # `forget(record)` inlined: a call per task less past the limit (issue 16)
                    record.closed = True
                    writes = record.writes
                    last = writes[-4] if writes else -1
                    record.reads, record.writes = EMPTY, ()
                    self.pruned[record.task_id] = last
                    if last > self.pruned_seq:
                        self.pruned_seq = last
                    return

    def keep(self, record: TaskRecord) -> None:
        """Keep the record of a task that ended: closed (later writes under it are
        discarded), one importance more if it wrote, then bounded like the others."""
        record.closed = True
        if record.writes and record.importance < 6:
            record.importance += 1
        self.add(record)

    def forget(self, record: TaskRecord, cancelled: bool = False) -> None:
        """Drop a record (evicted, or its task was cancelled in flight)."""
        record.closed = True
        last = record.writes[-4] if record.writes else -1
        # what it read and wrote goes with it (its task's `TaskRun`, which is this record,
        # lives on in the result: memory stays bounded by ``max_context_items``)
        record.reads, record.writes = EMPTY, ()
        self.pruned[record.task_id] = last
        if cancelled:
            self.cancelled.add(record.task_id)
        if last > self.pruned_seq:
            self.pruned_seq = last

    def all(self) -> Iterable[TaskRecord]:
        yield from self.by_task.values()
        yield from list(self.active.values())
