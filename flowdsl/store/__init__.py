"""The run stores: a journal of runs in SQLite (one machine) or PostgreSQL (a team), for
history, resume and caching (imported lazily; PostgreSQL needs the ``postgres`` extra)."""

from .base import SqlStore
from .sqlite import SqliteStore

__all__ = ["SqlStore", "SqliteStore", "PostgresStore", "open_store"]


def __getattr__(name: str) -> object:
    if name == "PostgresStore":  # psycopg is imported only when asked for
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'flowdsl.store' has no attribute {name!r}")


PG_SCHEMES = ("postgresql://", "postgres://")


def open_store(where: object) -> SqlStore:
    """A store for ``where``: a store as is, a ``postgresql://``/``postgres://`` DSN as a
    `PostgresStore`, anything else as the path of a `SqliteStore`."""
    if isinstance(where, SqlStore):
        return where
    if isinstance(where, str) and where.startswith(PG_SCHEMES):
        from .postgres import PostgresStore

        return PostgresStore(where)
    return SqliteStore(where)  # type: ignore[arg-type]
