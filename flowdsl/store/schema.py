"""The run store's schema, versioned through ``PRAGMA user_version``.

Tables (all keyed by ``run_id``):

- ``runs``: one row per run: flow name, status, start/end (epoch seconds), the inputs (encoded
  with the flow's serializer), the task fingerprints (JSON), the owner while it runs (host,
  pid, process start time), the number of tasks, (v2) the plan's order of task ids, (v3)
  its ``targets`` (JSON; NULL: the whole flow) and (v4) its ``plan_edges`` (JSON: task id ->
  upstream ids; NULL for a run recorded before v4).
- ``sessions``: one row per process that worked on the run (the first run, each resume).
- ``tasks``: one row per task that started or was settled: status, attempts, timings, error
  and traceback text, reason, the encoded result and delta (with their codec), and ``seq``,
  the completion order (replayed in that order on resume).
- ``elements`` (v6): one row per element of a mapped task that ended: its index, status,
  attempts, timings, error, the encoded result (with its codec) and the digest of the values
  the map was started with (a resumed map restores an element only over the same values).
- ``attempts``: one row per attempt (session, start, end, status, error): the history a
  report or a Gantt chart is drawn from (read it with `SqlStore.attempt_rows`). A task's first
  attempt has no row of its own while it runs or once it completed the task: the task's row
  stands for it (one write per state change, and one table less to write for nearly every
  task); it gets one when it fails or is cancelled, when a resume finds it abandoned, or
  when a resume re-runs its task.
- (v5) ``cache_entries``: completed results kept for later runs of the same flow, keyed by
  flow, task, task fingerprint and the hash of the task's inputs; the run that made each,
  when, and the encoded result and delta with their codec.

A migration is a list of statements that takes the schema from version N-1 to N; a store
written by a newer flowdsl (a higher version) is refused rather than misread. A new SQLite
file is made in one step from what the migrations leave (`fresh_schema`).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

SCHEMA_VERSION = 6

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            flow TEXT NOT NULL,
            status TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            total_tasks INTEGER NOT NULL,
            inputs BLOB,
            inputs_codec TEXT NOT NULL,
            fingerprints TEXT NOT NULL,
            owner_host TEXT,
            owner_pid INTEGER,
            owner_start TEXT
        )""",
        "CREATE INDEX runs_by_start ON runs (started)",
        """CREATE TABLE sessions (
            run_id TEXT NOT NULL,
            session INTEGER NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL,
            PRIMARY KEY (run_id, session)
        ) WITHOUT ROWID""",
        """CREATE TABLE tasks (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started REAL,
            ended REAL,
            duration REAL,
            error TEXT,
            traceback TEXT,
            reason TEXT,
            result BLOB,
            delta BLOB,
            codec TEXT,
            seq INTEGER,
            PRIMARY KEY (run_id, task_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            session INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (run_id, task_id, session, attempt)
        ) WITHOUT ROWID""",
    ],
    # the plan's task order (JSON list of ids), so a run is shown in plan order
    2: ["ALTER TABLE runs ADD COLUMN plan_order TEXT"],
    # 3: the target tasks of a run made with targets= (JSON list; NULL: the whole flow)
    3: ["ALTER TABLE runs ADD COLUMN targets TEXT"],
    # 4: the plan's dependencies (JSON {task id: [upstream ids]}), so a report drawn from the
    # store shows the same graph as the run's own
    4: ["ALTER TABLE runs ADD COLUMN plan_edges TEXT"],
    # 5: caching across runs (``@flow.task(cache=...)``)
    5: [
        """CREATE TABLE cache_entries (
            flow TEXT NOT NULL,
            task_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            input_key TEXT NOT NULL,
            run_id TEXT NOT NULL,
            created REAL NOT NULL,
            result BLOB,
            delta BLOB,
            codec TEXT NOT NULL,
            PRIMARY KEY (flow, task_id, fingerprint, input_key)
        ) WITHOUT ROWID""",
    ],
    # 6: the elements of mapped tasks, each journalled when it ends
    6: [
        """CREATE TABLE elements (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started REAL,
            ended REAL,
            duration REAL,
            error TEXT,
            result BLOB,
            codec TEXT,
            digest TEXT,
            PRIMARY KEY (run_id, task_id, idx)
        ) WITHOUT ROWID""",
    ],
}

FLOWDSL_TABLES = frozenset(
    statement.split("(", 1)[0].split()[-1]
    for statements in MIGRATIONS.values() for statement in statements
    if statement.lstrip().upper().startswith("CREATE TABLE"))
"""The tables a run store holds; a database with others is another application's."""


@functools.lru_cache(maxsize=None)
def fresh_schema() -> tuple[str, ...]:
    """The statements that make a new SQLite store at `SCHEMA_VERSION` in one step: what the
    migrations leave in ``sqlite_master`` (tables, then indexes, as made), read once per
    process from an in-memory database they were run on. A new file made from them has the
    same schema as one migrated step by step, without the three ``ALTER TABLE``s that each
    re-read the whole schema (the most costly part of making a store)."""
    import sqlite3

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for version in range(1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        return tuple(row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"))
    finally:
        conn.close()


#: a time stamp for the store (epoch seconds); `time.time` itself, not a function calling it
#: (a frame less at each of the journal's writes)
now = time.time


def dumps(value: Any) -> str:
    """JSON text with sorted keys, as the store keeps it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
