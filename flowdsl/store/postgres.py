"""`PostgresStore`: the run store on a PostgreSQL server, shared by several machines.

Same records, journal and promises as `SqliteStore` (the SQL is written once, see
`pgsql.translate`); what differs is the connection and ownership:

- Ownership is a lease (table ``flowdsl_leases``): the owner renews ``heartbeat_at`` every
  ``lease/3`` s from a daemon thread on a connection of its own, because a long task makes
  no write that could carry it; every journal write also renews it and, in the same
  statement, checks that this session still owns the run (a fence: a stalled owner whose run
  was taken over fails its next write with `StoreError` and writes nothing). Times are the
  database's (``clock_timestamp()``), so the hosts' clocks do not matter.
- Two resumers are serialised by a row lock (``SELECT … FOR UPDATE`` on the run's row),
  taken in the transaction that decides and records the takeover: it is released by commit,
  rollback or a dropped connection, needs no key of its own, and guards exactly the row
  being claimed (an advisory lock would add a second name for the same thing).
- A write whose connection turns out broken reconnects once and replays that transaction;
  if that fails too the run stops with `StoreError` (it stays RUNNING until its lease expires).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from typing import Any, Iterator, Sequence

from ..errors import ResumeError, StoreError
from .base import Claim, SqlStore
from .interrupts import deferred_sigint
from .journal import RunJournal
from .owner import owner_gone
from .pgsql import translate, translate_ddl
from .schema import MIGRATIONS, SCHEMA_VERSION

try:
    import psycopg
    from psycopg.rows import dict_row
except ImportError as _missing:  # pragma: no cover - depends on the installed extras
    raise ImportError("flowdsl.PostgresStore needs psycopg 3: pip install 'flowdsl[postgres]'") \
        from _missing

__all__ = ["PostgresStore"]

PG_MIGRATIONS: dict[int, list[str]] = {
    1: ["""CREATE TABLE flowdsl_leases (
            run_id TEXT PRIMARY KEY,
            session BIGINT NOT NULL,
            host TEXT NOT NULL,
            pid BIGINT NOT NULL,
            lease DOUBLE PRECISION NOT NULL,
            heartbeat_at TIMESTAMPTZ NOT NULL
        )"""],
}
"""PostgreSQL-only tables, created with the shared schema's version of the same number."""

_RENEW = ("UPDATE flowdsl_leases SET heartbeat_at = clock_timestamp() "
          "WHERE run_id = %s AND session = %s")
_FENCE = ("WITH renewed AS (" + _RENEW + " RETURNING 1) "
          "SELECT 1 / (SELECT count(*) FROM renewed)::int")
"""Renews the lease and fails (division by zero: the transaction aborts, nothing is written)
when this session no longer owns the run; a check on the server keeps the transaction in one
round trip."""
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@|(\bpassword=)[^&\s]*")


class _Lost(StoreError):
    """A read inside a transaction whose connection broke: the transaction cannot go on."""


def _clean(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL text cannot hold NUL: such text (an error message) keeps it as ``\\x00``.
    Values never meet this: they are stored as bytes (`PostgresStore.blob`)."""
    if any(type(p) is str and "\x00" in p for p in params):
        return tuple(p.replace("\x00", "\\x00") if type(p) is str else p for p in params)
    return params


class _LostCursor:
    def fetchone(self) -> Any:
        raise _Lost("the connection to the run store broke inside a transaction")

    fetchall = fetchone
    rowcount = -1


class _Transaction:
    """One write transaction, sent in one round trip (psycopg's pipeline mode: BEGIN, the
    fence, the statements and COMMIT go out together; a read inside syncs on the spot). Its
    statements are kept, so that when the connection breaks the whole transaction is replayed
    once on a new connection."""

    def __init__(self, store: PostgresStore, claim: Claim | None) -> None:
        self.store = store
        self.claim = claim
        self.statements: list[tuple[str, Sequence[Any], bool]] = []
        self.conn: Any = None
        self.pipeline: Any = None
        self.broken = False
        self.reads = False  # a transaction that read decided on what it read: never replayed

    # the cursor-like interface the journal writes through
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._do(translate(sql), _clean(params), many=False)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._do(translate(sql), [_clean(r) for r in rows], many=True)

    def _do(self, sql: str, params: Any, many: bool) -> Any:
        self.statements.append((sql, params, many))
        self.reads = self.reads or sql.startswith("SELECT")
        if self.broken:
            return _LostCursor()
        try:
            return self._run(self.conn, sql, params, many)
        except psycopg.Error as exc:
            if self.store._is_broken(self.conn, exc):
                self.broken = True
                return _LostCursor()
            raise

    def _run(self, conn: Any, sql: str, params: Any, many: bool) -> Any:
        cursor = conn.cursor()
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor

    def begin(self) -> None:
        try:
            self.conn = self.store.connection
            self.pipeline = self.conn.pipeline()
            self.pipeline.__enter__()
            self.conn.execute("BEGIN")
        except psycopg.Error as exc:
            if not self.store._is_broken(self.conn, exc):
                raise
            self.broken = True
        if self.claim is not None:  # this session must still own the run
            self._do(_FENCE, (self.claim.run_id, self.claim.session), many=False)

    def commit(self) -> None:
        if not self.broken:
            try:
                self.conn.execute("COMMIT")
                self._end_pipeline()
                return
            except psycopg.Error as exc:
                if not self.store._is_broken(self.conn, exc):
                    raise
        self._replay()

    def _end_pipeline(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)  # sends what is queued; raises its errors

    def _replay(self) -> None:
        """Reconnect once and run the transaction again; its failure is the run's end. One
        that read (opening a run) is not replayed but started over by its caller."""
        self.pipeline = None
        self.store._drop()
        if self.reads:
            raise _Lost(f"run store {self.store.label}: the connection broke")
        try:
            conn = self.store.connection
            with conn.transaction():
                for sql, params, many in self.statements:
                    self._run(conn, sql, params, many)
        except psycopg.errors.DivisionByZero:
            raise
        except psycopg.Error as exc:
            self.store._drop()
            raise StoreError(f"run store {self.store.label}: the connection broke and "
                             f"reconnecting failed: {exc}") from exc

    def rollback(self) -> None:
        if self.conn is None or self.broken:
            return
        with contextlib.suppress(psycopg.Error):
            self._end_pipeline()
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("ROLLBACK")


class _Heartbeat(threading.Thread):
    """Renews a claim's lease every lease/3 s on a connection of its own."""

    def __init__(self, store: PostgresStore, claim: Claim) -> None:
        super().__init__(name=f"flowdsl-lease-{claim.run_id}", daemon=True)
        self.store = store
        self.claim = claim
        self.stopped = threading.Event()
        self.lost = False  # the lease row is gone: taken over (the next write fails)

    def run(self) -> None:
        conn: Any = None
        try:
            while not self.stopped.wait(self.claim.lease / 3):
                try:
                    if conn is None or conn.closed:
                        conn = self.store._connect()
                    if conn.execute(_RENEW, (self.claim.run_id, self.claim.session)).rowcount != 1:
                        self.lost = True
                        return
                except psycopg.Error:  # the server is away: try again at the next beat
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self.stopped.set()


class PostgresStore(SqlStore):
    """A run store on PostgreSQL: ``PostgresStore("postgresql://user@host/db")``, or pass the
    DSN itself as ``flow.run(..., store=...)``. ``lease``: seconds a run stays owned without a
    heartbeat (renewed every ``lease/3``); ``statement_timeout``: seconds any statement may
    take (a write that exceeds it stops the run with `StoreError`)."""

    for_update = " FOR UPDATE"

    def __init__(self, dsn: str, lease: float = 60.0, *, statement_timeout: float = 30.0,
                 connect_timeout: float = 10.0) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise ValueError(f"PostgresStore needs a DSN string, got {dsn!r}")
        for name, value in (("lease", lease), ("statement_timeout", statement_timeout),
                            ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be seconds > 0, got {value!r}")
        self.dsn = dsn
        self.lease = float(lease)
        self.statement_timeout = float(statement_timeout)
        self.connect_timeout = float(connect_timeout)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = 0

    # -- connection -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The DSN, without its password."""
        return _PASSWORD.sub(lambda m: f"{m[1]}***@" if m[1] else f"{m[2]}***", self.dsn)

    def _connect(self) -> Any:
        conn = psycopg.connect(self.dsn, autocommit=True,
                               connect_timeout=max(1, round(self.connect_timeout)))
        conn.execute(f"SET statement_timeout = {int(self.statement_timeout * 1000)}")
        return conn

    @property
    def connection(self) -> Any:
        """The connection of this process (opened and migrated on first use)."""
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            try:
                conn = self._connect()
                self._migrate(conn)
            except psycopg.Error as exc:
                raise StoreError(f"run store {self.label}: {exc}") from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _is_broken(self, conn: Any, exc: BaseException) -> bool:
        """Did ``exc`` come from a connection that is gone (not a failing statement)?"""
        return conn is None or bool(conn.broken or conn.closed)

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _migrate(self, conn: Any) -> None:
        """Create or migrate the schema forward; refuse a newer one before any write."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.flowdsl'))")
            version = 0
            if conn.execute("SELECT to_regclass('flowdsl_meta')").fetchone()[0] is not None:
                row = conn.execute("SELECT value FROM flowdsl_meta WHERE key = 'schema_version'"
                                   ).fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"run store {self.label} has schema version {version}, newer "
                                 f"than this flowdsl's {SCHEMA_VERSION}: upgrade flowdsl to read it")
            if version == SCHEMA_VERSION:
                return
            conn.execute("CREATE TABLE IF NOT EXISTS flowdsl_meta "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    conn.execute(translate_ddl(statement))
                for statement in PG_MIGRATIONS.get(target, []):
                    conn.execute(statement)
            conn.execute("INSERT INTO flowdsl_meta (key, value) VALUES ('schema_version', %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                         (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def write(self, claim: Claim | None = None) -> Iterator[_Transaction]:
        """One write transaction (replayed once on a new connection if the connection broke;
        with ``claim``, fenced by it); errors -> `StoreError`."""
        with self._lock:
            tx = _Transaction(self, claim)
            committed = False
            try:
                with deferred_sigint():  # Ctrl-C waits for COMMIT or ROLLBACK, then is raised
                    try:
                        tx.begin()
                        yield tx
                        tx.commit()
                    except BaseException as exc:
                        tx.rollback()
                        self._raise_for(exc, tx, claim)
                        raise
                    committed = True
            except BaseException as exc:
                if committed:  # an interrupt delivered once COMMIT was done
                    exc.flowdsl_committed = True  # type: ignore[attr-defined]
                raise

    def _raise_for(self, exc: BaseException, tx: _Transaction, claim: Claim | None) -> None:
        """Turn a failed transaction's database error into flowdsl's."""
        if isinstance(exc, psycopg.errors.DivisionByZero) and claim is not None:
            raise StoreError(self.taken_over(claim)) from None  # the fence
        if isinstance(exc, psycopg.errors.UniqueViolation) and \
                exc.diag.table_name == "runs":  # another process started this run id
            raise ResumeError(f"run already exists in {self.label} ({exc.diag.message_detail}): "
                              "pass resume= to continue it, or another run_id") from exc
        if isinstance(exc, psycopg.Error):
            if self._is_broken(tx.conn, exc):
                raise _Lost(f"run store {self.label}: {exc}") from exc
            raise StoreError(f"run store {self.label}: {exc}") from exc

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of one query (reconnecting once if the connection broke)."""
        with self._lock:
            for attempt in (1, 2):
                conn = self.connection
                try:
                    with conn.cursor(row_factory=dict_row) as cursor:
                        cursor.execute(translate(sql), params)
                        rows: list[dict[str, Any]] = cursor.fetchall()
                        return rows
                except psycopg.Error as exc:
                    if attempt == 1 and self._is_broken(conn, exc):
                        self._drop()
                        continue
                    raise StoreError(f"run store {self.label}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def blob(self, value: bytes | str) -> bytes | str:
        """Encoded values go to BYTEA columns as bytes (JSON text as UTF-8)."""
        return value.encode("utf-8") if isinstance(value, str) else value

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            self._drop()

    def __repr__(self) -> str:
        return f"PostgresStore({self.label!r}, lease={self.lease:g})"

    # -- ownership: a lease on the database's clock -----------------------------------------
    def check_owner(self, db: Any, where: str, run_id: str, host: str | None, pid: int | None,
                    started: str | None, force: bool = False) -> None:
        # force does not override a live lease: only its expiry frees a run elsewhere
        row = db.execute(
            "SELECT host, pid, lease, heartbeat_at + lease * interval '1 second' "
            "< clock_timestamp(), EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at) "
            "FROM flowdsl_leases WHERE run_id = ? FOR UPDATE", (run_id,)).fetchone()
        if row is None:  # no lease: its owner released it or never took it
            return
        o_host, o_pid, lease, expired, age = row
        if expired:
            return
        here = o_host == socket.gethostname()
        if here and o_pid == pid and owner_gone(o_host, o_pid, started or ""):
            return  # the owner process on this host is gone: at once
        raise ResumeError(
            f"cannot resume {where}: it is in progress in process {o_pid} on {o_host}, whose "
            f"lease is live (renewed {float(age):.1f} s ago, lease {lease:g} s); it can be "
            f"taken over once the lease expires" + (" or that process ends" if here else ""))

    def claim(self, db: Any, run_id: str, session: int) -> Claim:
        db.execute("INSERT INTO flowdsl_leases (run_id, session, host, pid, lease, heartbeat_at) "
                   "VALUES (?, ?, ?, ?, ?, clock_timestamp()) ON CONFLICT (run_id) DO UPDATE "
                   "SET session = EXCLUDED.session, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                   "lease = EXCLUDED.lease, heartbeat_at = EXCLUDED.heartbeat_at",
                   (run_id, session, socket.gethostname(), os.getpid(), self.lease))
        return Claim(run_id, session, self.lease)

    def release(self, db: Any, claim: Claim) -> None:
        db.execute("DELETE FROM flowdsl_leases WHERE run_id = ? AND session = ?",
                   (claim.run_id, claim.session))

    def detach(self, claim: Claim | None) -> None:
        if claim is not None and claim.heartbeat is not None:
            claim.heartbeat.stop()
            claim.heartbeat = None

    def abandon(self, claim: Claim | None) -> None:
        """Delete this session's lease on a connection of its own, if the server lets us: the
        run stopped here, so it is free for the next resume (from this process too) at once
        rather than when the lease expires."""
        if claim is None:
            return
        with contextlib.suppress(Exception):
            conn = self._connect()
            try:
                conn.execute("DELETE FROM flowdsl_leases WHERE run_id = %s AND session = %s",
                             (claim.run_id, claim.session))
            finally:
                conn.close()

    def taken_over(self, claim: Claim) -> str:
        """The message of a write refused because another session owns the run now."""
        who = ""
        with contextlib.suppress(Exception):
            conn = self._connect()
            try:
                row = conn.execute("SELECT host, pid FROM flowdsl_leases WHERE run_id = %s",
                                   (claim.run_id,)).fetchone()
            finally:
                conn.close()
            if row:
                who = f" by process {row[1]} on {row[0]}"
        return (f"run store {self.label}: run {claim.run_id!r} was taken over{who} after this "
                f"process's lease expired (or the run ended): this process writes nothing more")

    def open_run(self, plan: Any, **options: Any) -> RunJournal:
        """Start (or resume) a run; once recorded, a heartbeat keeps its lease alive."""
        for attempt in (1, 2):
            try:
                journal: RunJournal = super().open_run(plan, **options)
                break
            except _Lost:  # the connection broke in the middle: run it again, once
                self._drop()
                if attempt == 2:
                    raise
        if journal.claim is not None:
            beat = journal.claim.heartbeat = _Heartbeat(self, journal.claim)
            beat.start()
        return journal
