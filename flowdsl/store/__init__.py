"""The run store: a journal of runs in SQLite, for history and resume (imported lazily)."""

from .sqlite import SqliteStore

__all__ = ["SqliteStore"]
