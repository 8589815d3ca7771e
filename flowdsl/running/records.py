"""Task records: what each task read and wrote, bounded by importance.

A `TaskRecord` keeps a task's declared inputs and its writes (flat: sequence, key, replaced,
new); `Records` keeps them for a run, at most ``limit``, evicting the least important,
oldest ones beyond it (in batches, amortised O(1) per task; readers always see the bound).
"""

from __future__ import annotations

import threading
from itertools import repeat
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from ..declaring.spec import EMPTY
from ..status import TaskStatus

__all__ = ["TaskRecord", "Records"]


class TaskRecord:
    """What one task did to the context: its declared inputs, its delta, what it replaced.

    A run's unit of work (`TaskRun`) is its task's record: one object per task, not two
    (issue 16); a record made here stands alone (a Dask worker's, the idle slot's)."""

    __slots__ = ("task_id", "read_values", "writes", "duration", "status", "importance", "start_seq",
                 "closed")

    def __init__(self, task_id: str, importance: int, start_seq: int) -> None:
        self.task_id = task_id
        #: its declared inputs as bound (see `reads`): key -> value, or the handler's
        #: positional arguments when they are exactly those inputs' values, in the order of
        #: `input_keys` (the binder's choice: no dict per task to make and collect; issue 16)
        self.read_values: Mapping[str, Any] | tuple[Any, ...] = EMPTY
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
    def reads(self) -> Mapping[str, Any]:
        """Key -> value of each declared input the task was given."""
        values = self.read_values
        if type(values) is tuple:
            return dict(zip(self.input_keys(), values))
        return values  # type: ignore[return-value]

    def input_keys(self) -> tuple[str, ...]:
        """The declared inputs' keys, in the order of the binder's arguments (a record made
        here holds no arguments: none)."""
        return ()

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
    """Task records, bounded: beyond ``limit`` the lowest importance goes first, oldest first.

    Evicted in batches: a run adds records up to ``limit`` plus a slack (an eighth), then
    trims back to ``limit`` in one loop: ~1,300 instructions per evicted record where one
    eviction per task cost ~2,200 (`add` under callgrind, 20,000 adds; issue 16). Every reader (the ``view``,
    `record`, `all`) trims first, so what a reader sees is exactly what evicting one
    record per task would have kept: the kept set is the ``limit`` best by (importance,
    age), both fixed when a record is added, whatever the moment of the trim. Only the
    memory of up to the slack's records (their reads and writes) lasts a little longer."""

    __slots__ = ("limit", "high", "by_task", "active", "buckets", "heads", "evicted",
                 "pruned", "pruned_seq", "cancelled", "lock")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        slack = limit >> 3
        self.high = limit + (slack if slack > 8 else 8)  # trimmed beyond it (no `max()` call)
        self.by_task: dict[str, TaskRecord] = {}
        self.active: dict[str, TaskRecord] = {}  # records of tasks in flight
        #: per importance 0..6, the task ids in the order their records were kept; the
        #: first ``heads[i]`` of ``buckets[i]`` were evicted (dropped now and then)
        self.buckets: list[list[str]] = [[], [], [], [], [], [], []]  # (no comprehension)
        self.heads = [0] * 7
        #: the ids of every evicted record, in order: a list, extended by C (a dict entry per
        #: id cost ~780 of the ~1,540 instructions per evicted record; issue 16), searched
        #: only on the error path (`was_pruned`)
        self.evicted: list[str] = []
        #: task id -> highest write sequence it held, for the pruned records that wrote and
        #: the cancelled ones (-1: wrote nothing); what `snapshot` needs to name a culprit
        self.pruned: dict[str, int] = {}
        self.pruned_seq = -1  # highest write sequence among pruned records
        self.cancelled: set[str] = set()  # tasks cancelled in flight: they keep no record
        self.lock = threading.Lock()  # one trim at a time (a reader's thread, a task's)

    def add(self, record: TaskRecord) -> None:
        self.by_task[record.task_id] = record
        self.buckets[record.importance].append(record.task_id)
        if len(self.by_task) > self.high:
            self.trim()

    def trim(self) -> None:
        """Evict the least important, oldest records down to ``limit``: the ids of a batch
        are sliced off their bucket and popped from ``by_task`` by C loops (`map`); Python
        runs only to drop each record's reads and writes."""
        by_task, pruned, heads, limit = self.by_task, self.pruned, self.heads, self.limit
        with self.lock:
            level = 0
            while len(by_task) > limit and level < 7:
                excess = len(by_task) - limit
                bucket, head = self.buckets[level], heads[level]
                ids = bucket[head:head + excess]
                if not ids:
                    level += 1
                    continue
                head += len(ids)
                if head >= 1024 and 2 * head >= len(bucket):  # drop the evicted ids
                    del bucket[:head]
                    head = 0
                heads[level] = head
                self.evicted.extend(ids)
                for record in map(by_task.pop, ids, repeat(None)):  # kept ones are closed
                    if record is None:  # (an id kept twice: its record went the first time)
                        continue
                    record.read_values = EMPTY
                    writes = record.writes
                    if writes:  # what it wrote goes, its last write's number stays
                        last = pruned[record.task_id] = writes[-4]
                        record.writes = ()
                        if last > self.pruned_seq:
                            self.pruned_seq = last

    @property
    def view(self) -> Mapping[str, TaskRecord]:
        """The kept records, read-only, trimmed on every read (made per call: a view kept
        here would be a reference cycle, holding a finished run until the collector ran)."""
        return _TrimmedView(self)

    def kept(self) -> dict[str, TaskRecord]:
        """``by_task``, trimmed to ``limit`` first: what every reader goes through."""
        if len(self.by_task) > self.limit:
            self.trim()
        return self.by_task

    def record(self, task_id: str) -> TaskRecord | None:
        """The kept or in-flight record of ``task_id`` (None: pruned or never ran)."""
        return self.kept().get(task_id) or self.active.get(task_id)

    def keep(self, record: TaskRecord) -> None:
        """Keep the record of a task that ended: closed (later writes under it are
        discarded), one importance more if it wrote, then bounded like the others."""
        record.closed = True
        if record.writes and record.importance < 6:
            record.importance += 1
        self.add(record)

    def forget(self, record: TaskRecord) -> None:
        """Drop the record of a task cancelled in flight (``trim`` drops evicted ones)."""
        record.closed = True
        last = record.writes[-4] if record.writes else -1
        # what it read and wrote goes with it (its task's `TaskRun`, which is this record,
        # lives on in the result: memory stays bounded by ``max_context_items``)
        record.read_values, record.writes = EMPTY, ()
        self.pruned[record.task_id] = last
        self.cancelled.add(record.task_id)
        if last > self.pruned_seq:
            self.pruned_seq = last

    def was_pruned(self, task_id: str) -> bool:
        """Whether ``task_id``'s record was evicted or dropped (cancelled in flight); a
        linear search of the evicted ids: for error messages only."""
        return task_id in self.pruned or task_id in self.evicted

    def pruned_ids(self) -> set[str]:
        """Every task whose record was evicted or dropped."""
        return set(self.evicted) | self.pruned.keys()

    def all(self) -> Iterable[TaskRecord]:
        yield from list(self.kept().values())
        yield from list(self.active.values())


class _TrimmedView(Mapping[str, TaskRecord]):
    """``context.records``: a read-only view of the kept records, trimmed on every read."""

    __slots__ = ("_book",)

    def __init__(self, book: Records) -> None:
        self._book = book

    def __getitem__(self, task_id: str) -> TaskRecord:
        return self._book.kept()[task_id]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._book.kept()))

    def __len__(self) -> int:
        return len(self._book.kept())

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._book.kept()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._book.kept()!r})"
