"""The `RunJournal` the runtime writes through: one write transaction per state change that
matters, called synchronously by the runtime. `RunJournal.task_completed` encodes first and may
veto with `SerializationError` (nothing written); any database failure is a `StoreError` that
stops the run. Opening (or resuming) a run, which builds the journal, is `store/opening.py`.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..running.journal import Cached, Restored, RestoredElement
from . import cache
from ..running.result import TaskRun
from ..status import RunStatus
from .codec import Types, encode
from .schema import now

if TYPE_CHECKING:
    from .base import Claim, SqlStore

__all__ = ["RunJournal", "Restored", "storable_text"]

_STARTED_AS = ("INSERT OR REPLACE INTO tasks (run_id, task_id, status, attempts, started) "
               "VALUES ({run}, ?, 'running', 1, ?)")
#: a first attempt completed the task (its row was made by `_STARTED`): without a delta, the
#: common case, NULL is written as such (a None parameter costs sqlite3 an adapter lookup)
_FIRST_COMPLETED_AS = ("UPDATE tasks SET status = 'completed', attempts = 1, started = ?, "
                       "ended = ?, duration = ?, result = ?, delta = NULL, codec = {codec}, "
                       "seq = ?, error = NULL, traceback = NULL WHERE run_id = {run} AND "
                       "task_id = ?")
_STARTED = _STARTED_AS.format(run="?")
_FIRST_COMPLETED = _FIRST_COMPLETED_AS.format(codec="?", run="?")
_FIRST_COMPLETED_DELTA = _FIRST_COMPLETED.replace("delta = NULL", "delta = ?")
_COMPLETED = ("UPDATE tasks SET status = 'completed', attempts = ?, started = ?, ended = ?, "
              "duration = ?, result = ?, delta = ?, codec = ?, seq = ?, error = NULL, "
              "traceback = NULL WHERE run_id = ? AND task_id = ?")


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class _Inlined:
    """The two writes of nearly every task (`_STARTED`, `_FIRST_COMPLETED`) with the run id
    and the codec written into their text, made once per run, for a store whose
    ``inline_run_id`` allows it (SQLite): binding those texts costs sqlite3 a copy of each at
    every write, about 2,800 instructions a task (of the ~110,000 the store adds)."""

    __slots__ = ("started", "completed")

    def __init__(self, run_id: str) -> None:
        run = _literal(run_id)
        self.started = _STARTED_AS.format(run=run)
        self.completed = {codec: _FIRST_COMPLETED_AS.format(codec=_literal(codec), run=run)
                          for codec in ("json", "pickle")}


def storable_text(text: str | None) -> str | None:
    """Text the database can hold: a lone surrogate (a non-UTF-8 file name in an error
    message) becomes its ``\\udcXX`` escape instead of failing the write."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_text(exc: BaseException) -> str:
    return storable_text(f"{type(exc).__name__}: {exc}") or ""


class RunJournal:
    """The store's side of one run (one session of it)."""

    def __init__(self, store: SqlStore, flow: str, run_id: str, session: int,
                 inputs: Mapping[str, Any], restored: list[Restored], seq: int,
                 readonly: bool = False, claim: Claim | None = None,
                 types: Types | None = None,
                 restored_elements: Mapping[str, list[RestoredElement]] | None = None) -> None:
        self.store = store
        self.types = types  # the value types the flow declares (typed values decode into)
        self.flow = flow
        self.run_id = run_id
        self.session = session
        self.inputs = inputs
        self.restored = restored
        self.restored_elements = restored_elements or {}
        self.readonly = readonly  # resuming a SUCCEEDED run writes nothing
        self.owns_store = False  # the store was opened for this run: close it at the end
        self.open_time = 0.0  # seconds spent opening the run in the store (store_time)
        self._seq = seq
        self.claim = claim  # this session's hold on the run (a lease on PostgreSQL)
        self.fingerprints: Mapping[str, str] = {}  # task id -> fingerprint (the cache's key)
        self._inline = _Inlined(run_id) if store.inline_run_id and "\x00" not in run_id \
            else None  # (an SQL text cannot hold a NUL)

    def history(self) -> dict[str, list[float]]:
        """Recent durations per task of this flow, for adaptive scheduling."""
        return self.store.durations(self.flow)

    def task_started(self, task: TaskRun) -> None:
        """One row: the task runs its first attempt. That attempt gets a row of its own only if
        it fails or is cancelled (one write per state change); until then, and for good once it
        completed the task, the task's row stands for it (`SqlStore.attempt_rows`), and a
        resume after a crash turns it into an ``abandoned`` attempt."""
        if self._inline is not None:
            self.store.write_one(self.claim, self._inline.started, (task.task_id, now()))
        else:
            self.store.write_one(self.claim, _STARTED, (self.run_id, task.task_id, now()))

    def attempt_started(self, task: TaskRun) -> None:
        with self.store.write(self.claim) as db:
            db.execute("UPDATE tasks SET status = 'running', attempts = ? WHERE run_id = ? "
                       "AND task_id = ?", (task.attempts, self.run_id, task.task_id))
            db.execute("INSERT OR REPLACE INTO attempts (run_id, task_id, session, attempt, "
                       "started, status) VALUES (?, ?, ?, ?, ?, 'running')",
                       (self.run_id, task.task_id, self.session, task.attempts, now()))

    def attempt_failed(self, task: TaskRun, error: BaseException) -> None:
        with self.store.write(self.claim) as db:
            db.execute("UPDATE tasks SET status = 'retrying' WHERE run_id = ? AND task_id = ?",
                       (self.run_id, task.task_id))
            self._end_attempt(db, task, "failed", _error_text(error))

    def _end_attempt(self, db: Any, task: TaskRun, status: str, error: str | None,
                     only_running: bool = False) -> None:
        """Write the ended attempt's row (made here for a first attempt; a retry's was made
        when it started); ``only_running``: never over an attempt that had ended."""
        if not task.attempts:  # it failed before any attempt (binding its arguments)
            return
        started = task.history[-1].started if task.history else task.started_at
        db.execute("INSERT INTO attempts (run_id, task_id, session, attempt, started, ended, "
                   "status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, task_id, "
                   "session, attempt) DO UPDATE SET ended = excluded.ended, status = "
                   "excluded.status, error = excluded.error"
                   + (" WHERE attempts.status = 'running'" if only_running else ""),
                   (self.run_id, task.task_id, self.session, task.attempts,
                    now() if started is None else started, now(), status, error))

    def task_completed(self, task: TaskRun, result: Any, delta: Mapping[Any, Any]) -> None:
        """Encode (may raise `SerializationError`, writing nothing), then record."""
        serializer = task.step.serializer
        where = f"task {task.task_id!r}"
        blob = self.store.blob(encode(result, serializer, where, types=self.types))
        delta_blob = self.store.blob(encode(
            [[key, value] for key, value in delta.items()], serializer, where,
            "its shared-state writes", types=self.types)) if delta else None
        self._seq += 1
        if task.attempts == 1 and task.cache_key is None:
            # the common case, one statement: a first attempt that completed has no row of its
            # own, the task's row stands for it (`SqlStore.attempt_rows` reads it from there)
            inline = self._inline
            if delta_blob is None and inline is not None and serializer in inline.completed:
                self.store.write_one(self.claim, inline.completed[serializer], (
                    task.started_at, task.ended_at, task.duration, blob, self._seq, task.task_id))
            elif delta_blob is None:
                self.store.write_one(self.claim, _FIRST_COMPLETED, (
                    task.started_at, task.ended_at, task.duration, blob, serializer,
                    self._seq, self.run_id, task.task_id))
            else:
                self.store.write_one(self.claim, _FIRST_COMPLETED_DELTA, (
                    task.started_at, task.ended_at, task.duration, blob, delta_blob,
                    serializer, self._seq, self.run_id, task.task_id))
            return
        params = (task.attempts, task.started_at, task.ended_at, task.duration, blob,
                  delta_blob, serializer, self._seq, self.run_id, task.task_id)
        with self.store.write(self.claim) as db:
            db.execute(_COMPLETED, params)
            if task.attempts != 1:
                self._end_attempt(db, task, "completed", None)
            if task.cache_key is not None:  # a cached task that ran: keep it for later runs
                cache.keep(db, self.flow, task.task_id, self.fingerprints[task.task_id], task.cache_key,
                           self.run_id, blob, delta_blob, serializer)

    # -- the cache across runs ---------------------------------------------------------------
    def hash_encoding(self, value: Any) -> bytes | str:
        return cache.hash_encoding(value, self.types)

    def cache_lookup(self, task: TaskRun, key: str) -> Cached | None:
        step = task.step
        assert step.cache is not None
        return cache.lookup(self.store, self.flow, task.task_id, self.fingerprints[task.task_id], key,
                            step.cache.ttl, step.serializer,
                            f"run {self.run_id!r}, task {task.task_id!r}", self.types)

    def task_cached(self, task: TaskRun, hit: Cached) -> None:
        """Record ``task`` completed from the cache (its stored result written as is)."""
        result, delta, codec = hit.stored
        self._seq += 1
        with self.store.write(self.claim) as db:
            db.execute("INSERT OR REPLACE INTO tasks (run_id, task_id, status, attempts, "
                       "started, ended, duration, reason, result, delta, codec, seq) VALUES "
                       "(?, ?, 'completed', 0, ?, ?, 0.0, ?, ?, ?, ?, ?)",
                       (self.run_id, task.task_id, task.started_at, task.ended_at, task.reason,
                        self.store.blob(_raw(result)),
                        self.store.blob(_raw(delta)) if delta is not None else None, codec,
                        self._seq))

    def task_failed(self, task: TaskRun, error: BaseException) -> None:
        text = storable_text("".join(traceback.format_exception(type(error), error,
                                                                 error.__traceback__)))
        with self.store.write(self.claim) as db:  # no row yet when its run_if raised
            db.execute("INSERT INTO tasks (run_id, task_id, status, attempts, started, ended, "
                       "duration, error, traceback) VALUES (?, ?, 'failed', ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (run_id, task_id) DO UPDATE SET status = 'failed', "
                       "attempts = excluded.attempts, started = excluded.started, "
                       "ended = excluded.ended, duration = excluded.duration, "
                       "error = excluded.error, traceback = excluded.traceback, reason = NULL",
                       (self.run_id, task.task_id, task.attempts, task.started_at, task.ended_at,
                        task.duration, _error_text(error), text))
            if task.attempts:
                self._end_attempt(db, task, "failed", _error_text(error))

    def map_started(self, task: TaskRun, elements: int, digest: str | None) -> None:
        """A mapped task started: the element rows of other values (or beyond its count) go."""
        with self.store.write(self.claim) as db:
            db.execute("DELETE FROM elements WHERE run_id = ? AND task_id = ? AND (idx >= ? OR "
                       "digest IS NULL OR digest != ?)",
                       (self.run_id, task.task_id, elements, digest or ""))

    def element_completed(self, element: TaskRun, result: Any, digest: str | None) -> None:
        """Encode (may raise `SerializationError`, writing nothing), then record."""
        serializer = element.step.serializer
        blob = self.store.blob(encode(result, serializer,
                                      f"task {element.task_id!r}, element {element.index}",
                                      types=self.types))
        with self.store.write(self.claim) as db:
            db.execute("INSERT OR REPLACE INTO elements (run_id, task_id, idx, status, attempts, "
                       "started, ended, duration, error, result, codec, digest) VALUES "
                       "(?, ?, ?, 'completed', ?, ?, ?, ?, NULL, ?, ?, ?)",
                       (self.run_id, element.task_id, element.index, element.attempts,
                        element.started_at, element.ended_at, element.duration, blob,
                        serializer, digest))
            if element.cache_key is not None:  # an element of a cached task that ran
                cache.keep(db, self.flow, element.task_id, self.fingerprints[element.task_id],
                           element.cache_key, self.run_id, blob, None, serializer)

    def element_failed(self, element: TaskRun, error: BaseException,
                       digest: str | None) -> None:
        with self.store.write(self.claim) as db:
            db.execute("INSERT OR REPLACE INTO elements (run_id, task_id, idx, status, attempts, "
                       "started, ended, duration, error, digest) VALUES "
                       "(?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?)",
                       (self.run_id, element.task_id, element.index, element.attempts,
                        element.started_at, element.ended_at, element.duration,
                        _error_text(error), digest))

    def task_settled(self, task: TaskRun) -> None:
        """SKIPPED or CANCELLED before it started (resuming a SUCCEEDED run: as stored)."""
        if self.readonly:
            return
        with self.store.write(self.claim) as db:
            self._settle(db, task)

    def _settle(self, db: Any, task: TaskRun) -> None:
        # never over a completed row: an interrupt that came right after a completion's
        # COMMIT must not turn it into a cancel (the task would run again on resume)
        db.execute("INSERT INTO tasks (run_id, task_id, status, attempts, reason, started, "
                   "ended, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (run_id, task_id) DO UPDATE SET status = excluded.status, "
                   "attempts = excluded.attempts, reason = excluded.reason, "
                   "started = excluded.started, ended = excluded.ended, "
                   "duration = excluded.duration WHERE tasks.status != 'completed'",
                   (self.run_id, task.task_id, task.status.value, task.attempts,
                    storable_text(task.reason),
                    task.started_at, task.ended_at if task.started_at is not None else None,
                    task.duration))
        if task.attempts:  # cancelled in flight
            self._end_attempt(db, task, "cancelled", storable_text(task.reason),
                              only_running=True)

    def run_finished(self, status: RunStatus, unsaved: Sequence[TaskRun]) -> None:
        """The run ended: write the tasks settled without a write of their own (an interrupt
        cancels many at once), the run's status, and close the session."""
        finished = False
        try:
            if not self.readonly:
                self._finish(status, unsaved)
            finished = True
        finally:
            self.store.detach(self.claim)
            if not finished:
                self.store.abandon(self.claim)
            if self.owns_store:
                self.store.close()

    def _finish(self, status: RunStatus, unsaved: Sequence[TaskRun]) -> None:
        stamp = now()
        with self.store.write(self.claim) as db:
            for task in unsaved:
                self._settle(db, task)
            db.execute("UPDATE runs SET status = ?, ended = ?, owner_host = NULL, "
                       "owner_pid = NULL, owner_start = NULL WHERE run_id = ?",
                       (status.value, stamp, self.run_id))
            db.execute("UPDATE sessions SET ended = ?, status = ? WHERE run_id = ? AND "
                       "session = ?", (stamp, status.value, self.run_id, self.session))
            if self.claim is not None:
                self.store.release(db, self.claim)




def _raw(value: Any) -> bytes | str:
    return bytes(value) if isinstance(value, memoryview) else value
