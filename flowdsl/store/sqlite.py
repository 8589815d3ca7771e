"""`SqliteStore`: a real SQLite file that journals runs, so a failed run can be resumed.

WAL mode with ``synchronous=NORMAL`` by default (``durability="full"`` for FULL); every
write transaction is opened with ``BEGIN IMMEDIATE`` under a ``busy_timeout``, so two
processes sharing the file wait for each other instead of failing with "database is locked".
Any SQLite failure surfaces as `StoreError`. The file must be on a local disk (WAL needs
shared memory).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import StoreError
from .base import Claim, SqlStore
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SqliteStore"]

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}


class SqliteStore(SqlStore):
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
    def write(self, claim: Claim | None = None) -> Iterator[sqlite3.Connection]:
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

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of one query (a consistent snapshot)."""
        with self._lock:
            try:
                cursor = self.connection.execute(sql, params)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    @property
    def label(self) -> str:
        """The store's name in messages: its path."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, durability={self.durability!r})"
