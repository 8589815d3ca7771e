"""The store's SQL, written once in SQLite's dialect, as PostgreSQL reads it.

The two dialects differ in four places the store uses, translated once per statement:
placeholders (``?`` -> ``%s``), ``INSERT OR REPLACE`` (-> ``INSERT … ON CONFLICT (key) DO
UPDATE`` of every other column, so a replaced row loses the columns the statement leaves out,
as in SQLite), column types in DDL (``REAL`` -> ``DOUBLE PRECISION``, ``INTEGER`` -> ``BIGINT``,
``BLOB`` -> ``BYTEA``) and ``WITHOUT ROWID`` (dropped). The tables' columns and keys are read
from the shared migrations (`schema.MIGRATIONS`), the one description of the schema.
"""

from __future__ import annotations

import functools
import re

from .schema import MIGRATIONS

__all__ = ["translate", "translate_ddl", "tables"]

_CREATE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\((.*)\)", re.S)
_ALTER_ADD = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.I)
_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s*\(([^)]*)\)(.*)$", re.S)
_TYPES = [(re.compile(r"\bREAL\b"), "DOUBLE PRECISION"), (re.compile(r"\bINTEGER\b"), "BIGINT"),
          (re.compile(r"\bBLOB\b"), "BYTEA"), (re.compile(r"\)\s*WITHOUT ROWID"), ")")]


@functools.lru_cache(maxsize=None)
def tables() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Table -> (columns, primary key), from the shared migrations in order."""
    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for version in sorted(MIGRATIONS):
        for statement in MIGRATIONS[version]:
            created = _CREATE.search(statement)
            if created:
                name, body = created.groups()
                columns: list[str] = []
                key: tuple[str, ...] = ()
                for part in re.split(r",\s*(?![^()]*\))", body):
                    part = part.strip()
                    if part.upper().startswith("PRIMARY KEY"):
                        key = tuple(c.strip() for c in part[part.index("(") + 1:part.rindex(")")].split(","))
                    elif part:
                        column = part.split()[0]
                        columns.append(column)
                        if "PRIMARY KEY" in part.upper():
                            key = (column,)
                found[name] = (tuple(columns), key)
            added = _ALTER_ADD.search(statement)
            if added and added.group(1) in found:
                columns_, key_ = found[added.group(1)]
                found[added.group(1)] = (columns_ + (added.group(2),), key_)
    return found


def translate_ddl(statement: str) -> str:
    """A schema statement for PostgreSQL."""
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


@functools.lru_cache(maxsize=256)
def translate(sql: str) -> str:
    """A query or write statement for PostgreSQL (cached: the store's SQL is a fixed set)."""
    replaced = _REPLACE.match(sql)
    if replaced:
        table, _, rest = replaced.groups()
        columns, key = tables()[table]
        others = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
        sql = (f"INSERT INTO {table} ({replaced.group(2)}){rest} ON CONFLICT "
               f"({', '.join(key)}) DO UPDATE SET {others}")
    return sql.replace("%", "%%").replace("?", "%s")
