"""What both run stores share: reading the history (`runs`, `get_run`, `durations`) and
opening a run, written once over the backend seam that each store provides.

The seam (`SqlStore`'s abstract part) is small: ``write(claim)`` (one transaction, yielding a
cursor-like object with ``execute``/``executemany`` for SQL in SQLite's dialect), ``read``
(rows as dicts), ``blob`` (an encoded value as the backend keeps it), ``label`` (the store's
name in messages), ``for_update`` (the row-lock clause of the SELECT that opens a run) and the
ownership hooks ``check_owner``/``claim``/``release``/``detach``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Iterator

from ..errors import ResumeError, StoreError
from .codec import describe
from .opening import open_run
from .owner import owner_gone

__all__ = ["SqlStore", "Claim"]


class Claim:
    """This process's hold on a run it is writing (one session of it)."""

    __slots__ = ("run_id", "session", "lease", "heartbeat")

    def __init__(self, run_id: str, session: int, lease: float = 0.0) -> None:
        self.run_id = run_id
        self.session = session
        self.lease = lease
        self.heartbeat: Any = None  # the store's renewal of the lease, while the run lives


class SqlStore:
    """The history and run-opening logic of a store; subclasses give the backend seam."""

    for_update = ""  # the row-lock clause (SQLite's BEGIN IMMEDIATE already serialises writers)
    #: whether the journal may write the run id into its most frequent statements' text
    #: rather than bind it (an SQL literal: SQLite; PostgreSQL's SQL goes through `translate`)
    inline_run_id = False

    @property
    def label(self) -> str:  # pragma: no cover - each store names itself
        raise NotImplementedError

    @contextlib.contextmanager
    def write(self, claim: Claim | None = None) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError
        yield

    def write_one(self, claim: Claim | None, sql: str, params: tuple[Any, ...]) -> None:
        """One statement in a transaction of its own (SQLite runs it without BEGIN/COMMIT)."""
        with self.write(claim) as db:
            db.execute(sql, params)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def blob(self, value: bytes | str) -> bytes | str:
        """An encoded value as this backend stores it (SQLite: as is)."""
        return value

    def close(self) -> None:  # pragma: no cover - each store closes its own connection
        raise NotImplementedError

    # -- ownership (SQLite: the owner process on this host) ---------------------------------
    def check_owner(self, db: Any, where: str, run_id: str, host: str | None, pid: int | None,
                    started: str | None, force: bool = False) -> None:
        """Raise `ResumeError` unless the run in progress may be taken over now (``force``:
        the caller passed ``force=True``; each store says what it allows then)."""
        gone = owner_gone(host, pid, started or "") if host and pid is not None else True
        if not gone:
            raise ResumeError(f"cannot resume {where}: it is in progress in process {pid} "
                              f"on {host}" + (" (another host: cannot tell whether it "
                                              "lives)" if gone is None else ""))

    def claim(self, db: Any, run_id: str, session: int) -> Claim:
        """Record that this process now writes ``run_id`` (inside the opening transaction)."""
        return Claim(run_id, session)

    def release(self, db: Any, claim: Claim) -> None:
        """The run ended: give the claim up (inside the last transaction)."""

    def detach(self, claim: Claim | None) -> None:
        """Stop whatever keeps the claim alive (called however the run ended)."""

    def abandon(self, claim: Claim | None) -> None:
        """The run stopped in this process but its end could not be written (a store
        failure): give the claim up if the store still can, so that the run (left RUNNING)
        can be resumed at once, from this process too. Never raises."""

    def __enter__(self) -> "SqlStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- history ----------------------------------------------------------------------------
    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs newest first: ``{run_id, flow, status, started, ended, counts}``."""
        sql = "SELECT run_id, flow, status, started, ended, total_tasks FROM runs " \
              "ORDER BY started DESC, run_id DESC"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (int(limit),)
        runs = self.read(sql, params)
        if not runs:
            return []
        counts: dict[str, dict[str, int]] = {}
        for row in self.read("SELECT run_id, status, COUNT(*) AS n FROM tasks GROUP BY run_id, status"):
            counts.setdefault(row["run_id"], {})[row["status"]] = row["n"]
        listing = []
        for run in runs:
            per_status = counts.get(run["run_id"], {})
            total = run["total_tasks"]
            pending = total - sum(per_status.values()) if isinstance(total, int) else 0
            if pending > 0:
                per_status = {**per_status, "pending": pending}
            listing.append({
                "run_id": run["run_id"], "flow": run["flow"], "status": run["status"],
                "started": run["started"], "ended": run["ended"], "counts": per_status,
            })
        return listing

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's record: inputs, sessions and each task's status, attempts, duration,
        reason, error, traceback and result (pickled values are described, never loaded),
        tasks in plan order. Malformed content is a `StoreError` naming the run."""
        rows = self.read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.label}")
        try:
            return self._record(rows[0])
        except (TypeError, ValueError, AttributeError) as exc:  # UnicodeDecodeError included
            raise StoreError(f"run store {self.label}: run {run_id!r} holds malformed "
                             f"content: {type(exc).__name__}: {exc}") from exc

    def _record(self, run: dict[str, Any]) -> dict[str, Any]:
        run_id = run["run_id"]
        sessions = self.read(
            "SELECT pid, host, started, ended, status FROM sessions WHERE run_id = ? "
            "ORDER BY session", (run_id,))
        rows = self.read(
            "SELECT task_id, status, attempts, duration, error, traceback, reason, result, "
            "codec FROM tasks WHERE run_id = ? ORDER BY COALESCE(seq, 1e18), "
            "COALESCE(started, 0)", (run_id,))
        order = json.loads(run["plan_order"]) if run.get("plan_order") else []
        position = {task_id: n for n, task_id in enumerate(order)}
        rows.sort(key=lambda r: position.get(r["task_id"], len(position)))  # stable
        tasks = {}
        for row in rows:
            tasks[row["task_id"]] = {
                "status": row["status"], "attempts": row["attempts"],
                "duration": row["duration"], "reason": row["reason"], "error": row["error"],
                "traceback": row["traceback"],
                "result": describe(row["result"], row["codec"] or "json"),
            }
        for element in self.read(
                "SELECT task_id, idx, status, attempts, duration, error FROM elements WHERE "
                "run_id = ? AND status = 'failed' ORDER BY task_id, idx", (run_id,)):
            task = tasks.get(element["task_id"])
            if task is not None:  # a mapped task's failed elements, with index and error
                task.setdefault("failed_elements", []).append(
                    {"index": element["idx"], "attempts": element["attempts"],
                     "duration": element["duration"], "error": element["error"]})
        return {
            "run_id": run["run_id"], "flow": run["flow"], "status": run["status"],
            "started": run["started"], "ended": run["ended"],
            "inputs": describe(run["inputs"], run["inputs_codec"]),
            "sessions": sessions, "tasks": tasks,
        }

    def report(self, run_id: str, path: str | os.PathLike[str] | None = None, *,
               dependencies: Mapping[str, Sequence[str]] | None = None) -> str:
        """The HTML report of a recorded run (see `RunResult.to_html`), also written to
        ``path`` when given; ``KeyError`` for an unknown run id. The graph's edges are the
        plan's dependencies as recorded with the run; ``dependencies`` (task id -> upstream
        ids) replaces them (a run recorded before the store kept them has none)."""
        from ..report import from_store, render, write

        return write(render(from_store(self, run_id, dependencies)), path)

    def attempt_rows(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt of the run's tasks (``task_id, attempt, started, ended, status, error,
        session``), by start time. The journal writes no row for an attempt that its task's row
        can stand for: a first attempt in flight (``running``, no end yet) or one that completed
        the task; such a row has ``session`` None."""
        return self.read(
            "SELECT task_id, attempt, started, ended, status, error, session FROM attempts "
            "WHERE run_id = ? UNION ALL SELECT task_id, 1, started, CASE WHEN status = "
            "'completed' THEN ended END, status, NULL, NULL FROM tasks t WHERE run_id = ? AND "
            "attempts = 1 AND status IN ('running', 'completed') AND started IS NOT NULL AND "
            "NOT EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = t.run_id AND "
            "a.task_id = t.task_id AND a.attempt = 1 AND a.started = t.started) "
            "ORDER BY started, task_id, session, attempt", (run_id, run_id))

    def durations(self, flow: str, last: int = 10) -> dict[str, list[float]]:
        """Task id -> its durations in the last ``last`` completed runs of ``flow``, oldest first."""
        rows = self.read(
            "SELECT t.task_id, t.duration FROM tasks t JOIN runs r ON r.run_id = t.run_id "
            "WHERE r.flow = ? AND t.status IN ('completed', 'failed') AND t.duration IS NOT NULL "
            "ORDER BY COALESCE(t.ended, 0) DESC", (flow,))
        history: dict[str, list[float]] = {}
        for row in rows:
            durations = history.setdefault(row["task_id"], [])
            if len(durations) < last:
                durations.append(row["duration"])
        return {task: list(reversed(d)) for task, d in history.items()}

    # -- the cache across runs ---------------------------------------------------------------
    def clear_cache(self, task_id: str | None = None) -> int:
        """Empty the cache across runs (only task ``task_id``'s entries, when given; of any
        flow); returns how many entries were removed. Runs and their results stay."""
        from .cache import clear

        return clear(self, task_id)

    # -- runs -------------------------------------------------------------------------------
    def open_run(self, plan: Any, **options: Any) -> Any:
        """Start (or resume) a run of ``plan``; returns its `RunJournal`. See `journal.open_run`."""
        return open_run(self, plan, **options)
