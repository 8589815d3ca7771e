"""`SqliteStore`: a real SQLite file that journals runs, so a failed run can be resumed.

WAL mode with ``synchronous=NORMAL`` by default (``durability="full"`` for FULL); every
write transaction is opened with ``BEGIN IMMEDIATE`` under a ``busy_timeout``, so two
processes sharing the file wait for each other instead of failing with "database is locked".
Any SQLite failure surfaces as `StoreError`. The file must be on a local disk (WAL needs
shared memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import StoreError
from ..status import RunStatus
from .codec import describe
from .journal import open_run
from .schema import MIGRATIONS, SCHEMA_VERSION, dumps, now

__all__ = ["SqliteStore"]

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}


class SqliteStore:
    """A run store in one SQLite file: ``SqliteStore("runs.db")``; pass it (or just the
    path) as ``flow.run(..., store=...)``. Read the history with `runs` and `get_run`."""

    def __init__(self, path: str | os.PathLike[str], durability: str = "normal",
                 busy_timeout: float = 30.0) -> None:
        if durability not in _DURABILITY:
            raise ValueError(f"durability must be 'normal' or 'full', got {durability!r}")
        if not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ValueError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.path = Path(path)
        self.durability = durability
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    # -- connection -------------------------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        """The connection of this process (opened, configured and migrated on first use)."""
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = self._enable_wal(conn)
            if mode.lower() != "wal":
                raise StoreError(f"run store {self.path}: SQLite refused WAL mode ({mode}); "
                                 "put the store on a local disk")
            conn.execute(f"PRAGMA synchronous = {_DURABILITY[self.durability]}")
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {exc}") from exc
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch a new file to WAL. Two processes creating the file at once can get
        "database is locked" here without SQLite's busy handler, so retry until busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"run store {self.path} has schema version {version}, newer than "
                             f"this flowdsl's {SCHEMA_VERSION}: upgrade flowdsl to read it")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current < target:  # another process may have migrated meanwhile
                    for statement in MIGRATIONS[target]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); errors -> `StoreError`."""
        with self._lock:
            conn = self.connection
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"run store {self.path}: {exc}") from exc
                raise

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of one query (a consistent snapshot)."""
        with self._lock:
            try:
                cursor = self.connection.execute(sql, params)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]  # type: ignore[misc]
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, durability={self.durability!r})"

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
            pending = run["total_tasks"] - sum(per_status.values())
            if pending > 0:
                per_status = {**per_status, "pending": pending}
            listing.append({
                "run_id": run["run_id"], "flow": run["flow"], "status": run["status"],
                "started": run["started"], "ended": run["ended"], "counts": per_status,
            })
        return listing

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's record: inputs, sessions and each task's status, attempts, duration,
        error, traceback and result (pickled values are described, never loaded)."""
        rows = self.read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        run = rows[0]
        sessions = self.read(
            "SELECT pid, host, started, ended, status FROM sessions WHERE run_id = ? "
            "ORDER BY session", (run_id,))
        tasks = {}
        for row in self.read(
                "SELECT task_id, status, attempts, duration, error, traceback, reason, result, "
                "codec FROM tasks WHERE run_id = ? ORDER BY COALESCE(seq, 1e18), started",
                (run_id,)):
            tasks[row["task_id"]] = {
                "status": row["status"], "attempts": row["attempts"],
                "duration": row["duration"], "error": row["error"],
                "traceback": row["traceback"], "reason": row["reason"],
                "result": describe(row["result"], row["codec"] or "json"),
            }
        return {
            "run_id": run["run_id"], "flow": run["flow"], "status": run["status"],
            "started": run["started"], "ended": run["ended"],
            "inputs": describe(run["inputs"], run["inputs_codec"]),
            "sessions": sessions, "tasks": tasks,
        }

    def durations(self, flow: str, last: int = 10) -> dict[str, list[float]]:
        """Task id -> its durations in the last ``last`` completed runs of ``flow``, oldest first."""
        rows = self.read(
            "SELECT t.task_id, t.duration FROM tasks t JOIN runs r ON r.run_id = t.run_id "
            "WHERE r.flow = ? AND t.status IN ('completed', 'failed') AND t.duration IS NOT NULL "
            "ORDER BY t.ended DESC", (flow,))
        history: dict[str, list[float]] = {}
        for row in rows:
            durations = history.setdefault(row["task_id"], [])
            if len(durations) < last:
                durations.append(row["duration"])
        return {task: list(reversed(d)) for task, d in history.items()}

    # -- runs -------------------------------------------------------------------------------
    def open_run(self, plan: Any, **options: Any) -> Any:
        """Start (or resume) a run of ``plan``; returns its `RunJournal`. See `journal.open_run`."""
        return open_run(self, plan, **options)
