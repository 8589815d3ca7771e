"""Caching across runs: a check before a unit's first attempt (DESIGN "Caching across runs").

A task with a cache policy (``step.cache``) is looked up in the run store's cache before it
starts: the key is its fingerprint (the store's side) plus the hash of the values its
parameters receive (task results and context keys, defaults included; resources excluded),
each encoded as the store would encode it as JSON (typed values included), whatever the
task's serializer, or whatever ``Cache(key=fn)`` returns. A hit completes the unit with the
cached result (no handler call, its writes replayed); a miss leaves the key on the unit, so
that its completion is kept in the cache. A task that takes ``context`` or ``task_input``, or
an input without such an encoding, runs uncached with a ``cache_skipped`` trace entry.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, Callable

from .fields import RunFields
from ..compiling.plan import Step
from ..errors import SerializationError, error_text
from ..status import TaskStatus
from .attempts import Args, Kwargs
from .context import CurrentTask, TaskContext, TaskRecord, _current
from .events import Emit, TaskFinished
from .journal import Cached, Journal
from .result import CACHED, TaskRun

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CacheSkipped", "input_key", "CachingRun"]


class CacheSkipped(Exception):
    """Why a cached task runs uncached this time: the parameter at fault and the error."""

    def __init__(self, parameter: str | None, error: str) -> None:
        super().__init__(error)
        self.parameter = parameter
        self.error = error


def _bound(step: Step, args: Args, kwargs: Kwargs,
           resources: frozenset[str]) -> Iterator[tuple[str, Any]]:
    for name, where, key in step.cache_inputs:
        if key is None or key not in resources:
            yield name, (kwargs[where] if isinstance(where, str) else args[where])


def input_key(step: Step, args: Args, kwargs: Kwargs,
              encoding: Callable[[Any], bytes | str],
              resources: frozenset[str] = frozenset()) -> str:
    """The hash of the values ``step``'s parameters receive, resources left out (or
    ``Cache(key=fn)``'s str); `CacheSkipped` naming the parameter whose value has no
    encoding."""
    assert step.cache is not None
    if step.uncacheable is not None:
        raise CacheSkipped(step.uncacheable, f"a task that takes {step.uncacheable!r} is "
                                             "never cached (its effects are not its result)")
    if step.cache.key is not None:
        try:
            key = step.cache.key(**dict(_bound(step, args, kwargs, resources)))
        except Exception as exc:
            raise CacheSkipped(None, f"Cache(key=...) raised {error_text(exc)}") from exc
        if not isinstance(key, str):
            raise CacheSkipped(None, f"Cache(key=...) returned {type(key).__name__}, not str")
        return "key:" + key
    digest = hashlib.sha256()
    for name, value in _bound(step, args, kwargs, resources):
        try:
            encoded = encoding(value)
        except SerializationError as exc:
            raise CacheSkipped(name, error_text(exc)) from exc
        data = encoded.encode() if isinstance(encoded, str) else encoded
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class CachingRun(RunFields):
    """The cache check of a run (a part of `Run`: it uses the run's context and bookkeeping)."""

    __slots__ = ()  # the fields: `RunFields`

    context: TaskContext
    journal: Journal | None
    emit: Emit | None
    run_id: str
    caching: bool  # a store is used and the run does not say cache=False
    resources: frozenset[str]  # the run's resources: never hashed
    cached: int
    elements_reused: int
    _offset: float
    _sequence: Iterator[int]

    def _journal(self, write: Callable[..., None], *args: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def from_cache(self, unit: TaskRun) -> bool:
        """Complete ``unit`` from the cache if an entry fits; False: run it (its key is left
        on the unit so that its completion is cached)."""
        step = unit.step
        try:
            args, kwargs, _ = step.bind(self.context)
        except Exception:  # the attempt reports it
            return False
        hit = self._look_up(unit, args, kwargs)
        if hit is None:
            return False
        self._complete_cached(unit, hit)
        return True

    def element_from_cache(self, element: TaskRun, args: Args, kwargs: Kwargs,
                           digest: str | None) -> bool:
        """Complete one element of a mapped task (its own arguments: the mapped values
        replaced by the element's) from the cache if an entry fits; False: run it (its key
        is left on the element so that its completion is cached)."""
        hit = self._look_up(element, args, kwargs)
        if hit is None:
            return False
        element.result = hit.result
        element.status = TaskStatus.COMPLETED
        element.reason = CACHED + hit.run_id
        self.elements_reused += 1
        element.started_at = element.ended_at = time.time()
        element.duration = 0.0
        assert self.journal is not None
        self._journal(self.journal.element_completed, element, hit.result, digest)
        return True

    def _look_up(self, unit: TaskRun, args: Args, kwargs: Kwargs) -> Cached | None:
        """The cache entry for ``unit`` with these arguments, or None (then its key, if it
        has one, is left on the unit; a ``cache_skipped`` trace entry says why it has none)."""
        step = unit.step
        journal = self.journal
        assert journal is not None and step.cache is not None
        try:
            key = input_key(step, args, kwargs, journal.hash_encoding, self.resources)
        except CacheSkipped as skipped:
            details: dict[str, Any] = {"parameter": skipped.parameter, "error": skipped.error}
            if unit.index is not None:
                details["index"] = unit.index
            self.context.trace_log.add({"task_id": step.id, "action": "cache_skipped",
                                        "timestamp": time.time(), "details": details})
            return None
        ttl = step.cache.ttl
        hit = None
        if ttl is None or ttl > 0:
            found: list[Cached | None] = []
            self._journal(lambda: found.append(journal.cache_lookup(unit, key)))
            hit = found[0]
        if hit is None:
            unit.cache_key = key
        return hit

    def _complete_cached(self, unit: TaskRun, hit: Cached) -> None:
        """COMPLETED from ``hit``: its writes replayed as this task's, no handler call."""
        step = unit.step
        context = self.context
        record: TaskRecord = unit  # its own record
        unit.start_seq = next(self._sequence)
        token = _current.set(CurrentTask(step.id, self.run_id, record))
        try:
            context.shared_state.apply(dict(hit.delta))
        finally:
            _current.reset(token)
        unit.status = TaskStatus.COMPLETED
        unit.reason = CACHED + hit.run_id
        unit.result = hit.result
        unit.started_at = unit.ended_at = time.time()
        unit.duration = 0.0
        assert self.journal is not None
        self._journal(self.journal.task_cached, unit, hit)
        context.results[step.id] = hit.result
        context.previous_log.add(unit)
        context.trace_log.add(unit)
        context.book.keep(record)
        self.cached += 1
        if self.emit is not None:
            self.emit(TaskFinished(run_id=self.run_id, task_id=step.id,
                                   status=TaskStatus.COMPLETED, attempts=0, duration=0.0,
                                   reason=unit.reason, result=hit.result))
