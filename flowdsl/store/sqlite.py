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
import urllib.parse
from _thread import get_ident
from pathlib import Path
from signal import SIGINT
from typing import Any, Iterator

import _signal  # type: ignore[import-not-found,unused-ignore]  # (why `_signal`: interrupts.py)

from ..errors import ResumeError, StoreError
from .base import Claim, SqlStore
from .interrupts import Held, deferred_sigint, deliver
from .owner import identity, owner_gone
from .schema import FLOWDSL_TABLES, MIGRATIONS, SCHEMA_VERSION, fresh_schema

__all__ = ["SqliteStore"]

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}
PAGE_SIZE = 2048


class SqliteStore(SqlStore):
    """A run store in one SQLite file: ``SqliteStore("runs.db")``; pass it (or just the
    path) as ``flow.run(..., store=...)``. Read the history with `runs` and `get_run`.

    ``readonly=True`` opens an existing store for reading only (listing and showing runs),
    which works in a read-only directory too; writing through it is a `StoreError`.
    A new store is built aside and linked into place, so a store path never holds a
    half-made file: an empty (0-byte) file or an SQLite database of another application
    (tables that are not flowdsl's) is refused with a `StoreError` naming the file.
    """

    inline_run_id = True

    def __init__(self, path: str | os.PathLike[str], durability: str = "normal",
                 busy_timeout: float = 30.0, *, readonly: bool = False) -> None:
        if durability not in _DURABILITY:
            raise ValueError(f"durability must be 'normal' or 'full', got {durability!r}")
        if not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ValueError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.path = Path(path)
        self.durability = durability
        self.busy_timeout = float(busy_timeout)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None  # the connection's, for `write_one`
        self._main: int | None = None  # this process's main thread (where Ctrl-C is held)
        self._held = Held()  # `write_one`'s (its writes never overlap: under the lock)
        self._pid = 0
        #: run ids this store object is running now (a run owned by this process but not in
        #: here was left behind by a run that ended without being able to write its end)
        self.live_runs: set[str] = set()

    # -- connection -------------------------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        """The connection of this process (opened, configured and migrated on first use)."""
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._open()
            self._cursor = None
            self._pid = os.getpid()
            self._main = threading.main_thread().ident
        return self._conn

    def _fail(self, problem: object) -> StoreError:
        return StoreError(f"run store {self.path}: {problem}")

    def _open(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                return self._open_readonly()
            if not self.path.exists():
                self._create()
            self._check_file()
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                self._configure(conn)
                self._check_tables(conn)
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL in the path
            raise self._fail(f"cannot open it: {type(exc).__name__}: {exc}") from exc
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        mode = self._enable_wal(conn)
        if mode.lower() != "wal":
            raise self._fail(f"SQLite refused WAL mode ({mode}); put the store on a local disk")
        conn.execute(f"PRAGMA synchronous = {_DURABILITY[self.durability]}")

    def _create(self) -> None:
        """Build a new store in a file of its own, then link it to ``path`` (atomic; if
        another process linked one first, that one is used)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        try:
            conn = sqlite3.connect(aside, isolation_level=None)
            try:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                self._configure(conn)
                with self._transaction(conn):  # the schema as the migrations leave it
                    for statement in fresh_schema():
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                conn.close()
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError:  # a file system without hard links: move it, unless one appeared
                if not self.path.exists():
                    os.replace(aside, self.path)
        finally:
            for leftover in (aside, Path(f"{aside}-wal"), Path(f"{aside}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _check_file(self) -> None:
        if self.path.is_dir():
            raise self._fail("it is a directory, not a file")
        if self.path.stat().st_size == 0:
            raise self._fail("it is an empty file (0 bytes), not a flowdsl run store (flowdsl "
                             "never leaves one behind): remove it to start a new store there")

    def _check_tables(self, conn: sqlite3.Connection) -> None:
        """Refuse a database that holds tables which are not flowdsl's."""
        names = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        foreign = sorted(names - FLOWDSL_TABLES)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if foreign or (version == 0 and names):
            listed = ", ".join(foreign or sorted(names))
            raise self._fail(f"not a flowdsl run store: it holds other tables ({listed}); "
                             "point the store at a file of its own")
        if version == 0:
            raise self._fail("not a flowdsl run store: an SQLite database without flowdsl's "
                             "schema; point the store at a file of its own")

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise self._fail("no such file")
        self._check_file()
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            # a WAL store in a directory we cannot write (no -shm file to make): read the
            # file as it is, which is safe as no process can be writing it there either
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True,
                                   isolation_level=None, check_same_thread=False)
        self._check_tables(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._fail(f"schema version {version} is newer than this flowdsl's "
                             f"{SCHEMA_VERSION}: upgrade flowdsl to read it")
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
            raise self._fail(f"schema version {version} is newer than this flowdsl's "
                             f"{SCHEMA_VERSION}: upgrade flowdsl to read it")
        if version == SCHEMA_VERSION:
            return
        with self._transaction(conn):  # every step in one transaction (a new file: all six)
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for target in range(current + 1, SCHEMA_VERSION + 1):  # (another process may
                for statement in MIGRATIONS[target]:                # have migrated meanwhile)
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, never left open, with Ctrl-C held until it ends.

        Whether COMMIT happened is read from the connection (``in_transaction``), not from
        whether an exception came out of it: an exception raised once COMMIT is done (an
        interrupt outside the main thread) is re-raised marked ``flowdsl_committed = True``.
        """
        reached_commit = False
        try:
            with deferred_sigint():
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    yield conn
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    reached_commit = True
                    conn.execute("COMMIT")
                except sqlite3.Error:  # COMMIT itself failed: not committed
                    reached_commit = False
                    _rollback(conn)
                    raise
        except BaseException as exc:
            if reached_commit and not conn.in_transaction:
                exc.flowdsl_committed = True  # type: ignore[attr-defined]
            else:
                _rollback(conn)
            raise

    @contextlib.contextmanager
    def write(self, claim: Claim | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); errors -> `StoreError`.
        A Ctrl-C arriving meanwhile is delivered once it has committed or rolled back."""
        if self.readonly:
            raise self._fail("opened read-only: it cannot record runs")
        with self._lock:
            conn = self.connection
            try:
                with self._transaction(conn):
                    yield conn
            except sqlite3.Error as exc:
                raise self._fail(f"{type(exc).__name__}: {exc}") from exc

    def write_one(self, claim: Claim | None, sql: str, params: tuple[Any, ...]) -> None:
        """One statement as one transaction, as the journal writes most state changes: in
        SQLite's autocommit mode a writing statement takes the write lock when it starts
        (waiting up to ``busy_timeout``, as ``BEGIN IMMEDIATE`` does) and commits when it ends,
        all or nothing, which spares the statements BEGIN and COMMIT (a third of the cost of
        a task's write). Ctrl-C is held as in `write`; an exception that comes once the
        statement changed its row is marked ``flowdsl_committed = True``."""
        if self.readonly:
            raise self._fail("opened read-only: it cannot record runs")
        with self._lock:
            if self._cursor is None or self._pid != os.getpid():
                self._cursor = self.connection.cursor()
            cursor, conn = self._cursor, self._conn
            assert conn is not None
            changes = conn.total_changes
            committed = False
            try:
                # `hold_sigint` and `release_sigint` written out (four calls a task less, about
                # 1% of the store's cost): in the main thread a Ctrl-C is held while the
                # statement runs, and delivered once it is done
                held = self._held
                previous = _signal.getsignal(SIGINT) if get_ident() == self._main else None
                if previous is not None:  # (None: a handler set outside Python)
                    held.previous, held.arrived = previous, False
                    try:
                        _signal.signal(SIGINT, held)
                    except ValueError:  # not the main interpreter: nothing is held
                        previous = None
                try:
                    cursor.execute(sql, params)
                    committed = True
                finally:
                    if previous is not None:
                        _signal.signal(SIGINT, previous)
                        if held.arrived:
                            deliver(held)
            except sqlite3.Error as exc:
                raise self._fail(f"{type(exc).__name__}: {exc}") from exc
            except BaseException as exc:
                # (``total_changes``: an interrupt outside the main thread, raised right
                # after the statement returned)
                if committed or conn.total_changes != changes:
                    exc.flowdsl_committed = True  # type: ignore[attr-defined]
                raise

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of one query (a consistent snapshot)."""
        with self._lock:
            try:
                cursor = self.connection.execute(sql, params)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise self._fail(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                if self._conn.in_transaction:  # never leave a write lock behind
                    _rollback(self._conn)
                self._conn.close()
            self._conn = None
            self._cursor = None

    @property
    def label(self) -> str:
        """The store's name in messages: its path."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, durability={self.durability!r})"

    # -- ownership: the owner process on this host ------------------------------------------
    def check_owner(self, db: Any, where: str, run_id: str, host: str | None, pid: int | None,
                    started: str | None, force: bool = False) -> None:
        """Refuse to resume a run whose owner process lives, or, on another host, may live
        (unless ``force``: a container restarted under a new name). This very process owns a
        run only while this store object runs it: one left ``running`` by a run of this
        process that could not write its end (a full disk) is free."""
        if not host or pid is None:
            return
        gone: bool | None
        if (host, pid, started or "") == identity():
            gone = run_id not in self.live_runs
        else:
            gone = owner_gone(host, pid, started or "")
        if gone or (gone is None and force):
            return
        if gone is None:
            raise ResumeError(f"cannot resume {where}: it is in progress in process {pid} on "
                              f"host {host!r} (another host: flowdsl cannot tell whether that "
                              "process lives); if it is gone (a restarted container), pass "
                              "force=True (--force) to take the run over")
        raise ResumeError(f"cannot resume {where}: it is in progress in process {pid} on host "
                          f"{host!r}")

    def claim(self, db: Any, run_id: str, session: int) -> Claim:
        self.live_runs.add(run_id)
        return Claim(run_id, session)

    def detach(self, claim: Claim | None) -> None:
        if claim is not None:
            self.live_runs.discard(claim.run_id)


def _rollback(conn: sqlite3.Connection) -> None:
    """End an open transaction, whatever happened to it."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
