"""What the runtime asks of a run store: the `Journal` protocol, and `Restored` tasks.

The runtime calls a journal synchronously at each state change that matters; a call may
veto (`SerializationError` from `task_completed` fails the task) and any other failure stops
the run. The run store (``flowdsl.store``) implements it; the runtime never imports it.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from ..status import RunStatus
from .result import TaskRun

__all__ = ["Journal", "Restored", "RestoredElement", "Cached"]


class Restored:
    """A task completed in an earlier session of the run, brought back by resume."""

    __slots__ = ("task_id", "result", "delta", "attempts", "started", "ended", "duration")

    def __init__(self, task_id: str, result: Any, delta: Sequence[tuple[Any, Any]],
                 attempts: int, started: float, ended: float, duration: float) -> None:
        self.task_id = task_id
        self.result = result
        self.delta = delta
        self.attempts = attempts
        self.started = started
        self.ended = ended
        self.duration = duration


class RestoredElement:
    """A completed element of a mapped task, recorded in an earlier session; ``digest``
    identifies the values it was mapped over (restored only when they are the same)."""

    __slots__ = ("task_id", "index", "result", "attempts", "started", "ended", "duration",
                 "digest")

    def __init__(self, task_id: str, index: int, result: Any, attempts: int,
                 started: float | None, ended: float | None, duration: float | None,
                 digest: str | None) -> None:
        self.task_id = task_id
        self.index = index
        self.result = result
        self.attempts = attempts
        self.started = started
        self.ended = ended
        self.duration = duration
        self.digest = digest


class Cached:
    """A completed result of an earlier run, found in the store's cache: its run, its
    result and delta (decoded), and the stored form the journal writes back as is."""

    __slots__ = ("run_id", "result", "delta", "stored")

    def __init__(self, run_id: str, result: Any, delta: Sequence[tuple[Any, Any]],
                 stored: Any = None) -> None:
        self.run_id = run_id
        self.result = result
        self.delta = delta
        self.stored = stored


class Journal(Protocol):
    """One session of one run in a store; each method is one write."""

    @property
    def run_id(self) -> str:
        """The run's id."""

    @property
    def inputs(self) -> Mapping[str, Any]:
        """The run's inputs (stored ones, on resume)."""

    @property
    def restored(self) -> Sequence[Restored]:
        """Tasks completed in earlier sessions, in completion order."""

    @property
    def restored_elements(self) -> Mapping[str, Sequence[RestoredElement]]:
        """Task id -> its elements completed in earlier sessions."""

    @property
    def open_time(self) -> float:
        """Seconds spent opening the run (counted as ``store_time``)."""

    def history(self) -> Mapping[str, list[float]]:
        """Recent durations per task of this flow (adaptive scheduling)."""

    def task_started(self, task: TaskRun) -> None:
        """The first attempt of ``task`` starts."""

    def attempt_started(self, task: TaskRun) -> None:
        """A retry's attempt starts."""

    def attempt_failed(self, task: TaskRun, error: BaseException) -> None:
        """An attempt failed and another one follows."""

    def task_completed(self, task: TaskRun, result: Any, delta: Mapping[Any, Any]) -> None:
        """``task`` completed; may veto with `SerializationError` (nothing written). With a
        ``task.cache_key``, its result is also kept in the cache for later runs."""

    def hash_encoding(self, value: Any) -> bytes | str:
        """The encoding of an input value that keys the cache; `SerializationError` when
        the value has none."""

    def cache_lookup(self, task: TaskRun, key: str) -> Cached | None:
        """A reusable cache entry of ``task`` for ``key`` (inputs' hash), or None."""

    def task_cached(self, task: TaskRun, hit: Cached) -> None:
        """``task`` completed from the cache entry ``hit``."""

    def task_failed(self, task: TaskRun, error: BaseException) -> None:
        """``task`` failed after its last attempt, or before any (its ``run_if`` predicate
        raised: ``task_started`` was never called, ``attempts`` is 0)."""

    def map_started(self, task: TaskRun, elements: int, digest: str | None) -> None:
        """Mapped ``task`` has ``elements`` elements over values identified by ``digest``."""

    def element_completed(self, element: TaskRun, result: Any, digest: str | None) -> None:
        """An element completed; may veto with `SerializationError` (nothing written)."""

    def element_failed(self, element: TaskRun, error: BaseException,
                       digest: str | None) -> None:
        """An element failed after its last attempt."""

    def task_settled(self, task: TaskRun) -> None:
        """``task`` was SKIPPED or CANCELLED."""

    def run_finished(self, status: RunStatus, unsaved: Sequence[TaskRun]) -> None:
        """The run ended with ``status``; ``unsaved`` were settled during an interrupt."""
