"""The run store (SQLite) as a user relies on it: a real file in WAL mode with the chosen
durability, a versioned schema, the history (`runs()`, `get_run()`), the JSON codec with its
type table, the pickle opt-in, refusals (`StoreError`, `ResumeError`, `SerializationError`),
two processes sharing one file, and a planted malicious pickle that nothing runs."""

from __future__ import annotations

import collections
import datetime as dt
import math
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import textwrap
import time
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdsl import (
    Flow,
    ResumeError,
    RunStatus,
    SerializationError,
    StoreError,
    TaskContext,
    TaskStatus,
)
from flowdsl.store import SqliteStore, open_store
from flowdsl.store.schema import SCHEMA_VERSION

# A picklable type JSON cannot hold (module level, so pickle finds it by name).
Point = collections.namedtuple("Point", "x y")

SESSION_KEYS = {"pid", "host", "started", "ended", "status"}
TASK_KEYS = {"status", "attempts", "duration", "error", "traceback", "result"}
RUN_KEYS = {"run_id", "flow", "status", "started", "ended", "inputs", "sessions", "tasks"}


def same(a, b) -> bool:
    """Equal and of the same type, all the way down (tuples stay tuples, int keys stay ints)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if {(type(k), k) for k in a} != {(type(k), k) for k in b}:
            return False
        return all(same(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return {(type(x), x) for x in a} == {(type(x), x) for x in b}
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return a == b


def sql(path, query, params=()):
    """Read the store file with a connection of our own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def write_sql(path, query, params=()):
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(query, params)
    finally:
        conn.close()


def two_step_flow(name, value_of, calls, fail, **first_options):
    """``first`` returns ``value_of()``; ``second`` (downstream) fails while ``fail["on"]``."""
    flow = Flow(name)

    @flow.task(**first_options)
    def first():
        calls.append("first")
        return value_of()

    @flow.task
    def second(first):
        calls.append("second")
        if fail["on"]:
            raise RuntimeError("second is not ready")
        return "done"

    return flow


# -- the file ---------------------------------------------------------------------------------

def test_store_file_is_wal_with_normal_synchronous_by_default(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("wal")
    flow.task(lambda: 1, id="one")
    store = SqliteStore(path)
    assert flow.run(store=store).status is RunStatus.SUCCEEDED
    assert path.is_file()
    assert sql(path, "PRAGMA journal_mode")[0][0] == "wal"  # persistent in the file
    # synchronous is per connection: read it on the store's own connection to the file
    assert store.connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_durability_full_sets_synchronous_full(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("full")
    flow.task(lambda: 1, id="one")
    store = SqliteStore(path, durability="full", busy_timeout=5)
    result = flow.run(store=store)
    assert result.status is RunStatus.SUCCEEDED
    assert store.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 5_000
    assert sql(path, "PRAGMA journal_mode")[0][0] == "wal"
    assert store.get_run(result.run_id)["status"] == "succeeded"


def test_store_refuses_unknown_durability(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        SqliteStore(tmp_path / "runs.db", durability="sometimes")


def test_schema_version_is_recorded_in_the_file(tmp_path):
    path = tmp_path / "runs.db"
    SqliteStore(path).runs()
    assert SCHEMA_VERSION >= 1
    assert sql(path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    tables = {row[0] for row in sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "sessions", "tasks", "attempts"} <= tables


def test_store_written_by_a_newer_flowdsl_is_refused(tmp_path):
    path = tmp_path / "future.db"
    write_sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=str(SCHEMA_VERSION + 1)):
        SqliteStore(path).runs()

    calls = []
    flow = Flow("future")
    flow.task(lambda: calls.append("ran"), id="one")
    with pytest.raises(StoreError):
        flow.run(store=path)
    assert calls == []  # refused before any task ran
    assert sql(path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION + 1  # not "migrated" down


def test_opening_an_existing_store_again_keeps_its_runs(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("again")
    flow.task(lambda: 1, id="one")
    run_id = flow.run(store=path).run_id
    reopened = SqliteStore(path)
    assert [r["run_id"] for r in reopened.runs()] == [run_id]
    assert sql(path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION


# -- history ------------------------------------------------------------------------------------

def test_runs_newest_first_with_counts(store_url):
    path = store_url
    fail = {"on": False}
    flow = Flow("history")

    @flow.task
    def a():
        return 1

    @flow.task
    def b(a):
        if fail["on"]:
            raise ValueError("b broke")
        return a + 1

    @flow.task
    def c(b):
        return b + 1

    # ids sort opposite to start time: the listing must follow time, not ids (each run starts
    # after the previous one ended, milliseconds later: the stamps differ without a pause)
    flow.run(store=path, run_id="z-first", raise_on_failure=False)
    fail["on"] = True
    flow.run(store=path, run_id="m-second", raise_on_failure=False)
    fail["on"] = False
    flow.run(store=path, run_id="a-third", raise_on_failure=False)

    runs = open_store(path).runs()
    assert [r["run_id"] for r in runs] == ["a-third", "m-second", "z-first"]
    assert runs[0]["started"] > runs[1]["started"] > runs[2]["started"]
    for run in runs:
        assert set(run) == {"run_id", "flow", "status", "started", "ended", "counts"}
        assert run["flow"] == "history"
        assert run["ended"] >= run["started"]
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded"]
    assert runs[0]["counts"] == {"completed": 3}
    assert runs[1]["counts"] == {"completed": 1, "failed": 1, "skipped": 1}
    assert runs[0]["started"] > runs[1]["started"] > runs[2]["started"]
    assert [r["run_id"] for r in open_store(path).runs(limit=2)] == ["a-third", "m-second"]


def test_get_run_record_shape_and_failed_task_traceback(store_url):
    path = store_url
    flow = Flow("shape")

    @flow.task(retries=2, retry_wait=0)
    def load(source):
        return {"source": source, "rows": (1, 2, 3)}

    def explode_inside(rows):
        raise ValueError(f"cannot validate {len(rows)} rows")

    @flow.task
    def validate(load):
        explode_inside(load["rows"])

    @flow.task
    def report(validate):
        return "never"

    result = flow.run({"source": "data.csv"}, store=path, run_id="shape-1", raise_on_failure=False)
    assert result.status is RunStatus.FAILED
    record = open_store(path).get_run("shape-1")

    assert RUN_KEYS <= set(record)
    assert record["run_id"] == "shape-1"
    assert record["flow"] == "shape"
    assert record["status"] == "failed"
    assert record["ended"] >= record["started"]
    assert record["inputs"] == {"source": "data.csv"}
    assert len(record["sessions"]) == 1
    session = record["sessions"][0]
    assert SESSION_KEYS <= set(session)
    assert session["pid"] == os.getpid()
    assert session["status"] == "failed"
    assert session["ended"] >= session["started"]

    tasks = record["tasks"]
    assert set(tasks) == {"load", "validate", "report"}
    for task in tasks.values():
        assert TASK_KEYS <= set(task)
    assert tasks["load"]["status"] == "completed"
    assert tasks["load"]["attempts"] == 1
    assert 0 < tasks["load"]["duration"] <= session["ended"] - session["started"]
    assert tasks["load"]["error"] is None
    assert tasks["load"]["result"] == {"source": "data.csv", "rows": (1, 2, 3)}
    assert type(tasks["load"]["result"]["rows"]) is tuple  # decoded through the type table

    failed = tasks["validate"]
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert "ValueError" in failed["error"] and "cannot validate 3 rows" in failed["error"]
    assert failed["traceback"].startswith("Traceback (most recent call last)")
    assert "explode_inside" in failed["traceback"]  # the frames, not just the message
    assert "cannot validate 3 rows" in failed["traceback"]
    assert failed["result"] is None
    assert tasks["report"]["status"] == "skipped"


def test_get_run_records_attempts_of_a_retried_task(store_url):
    path = store_url
    flow = Flow("attempts")
    seen = []

    @flow.task(retries=3, retry_wait=0)
    def flaky():
        seen.append(1)
        if len(seen) < 3:
            raise ConnectionError("try again")
        return "ok"

    result = flow.run(store=path)
    assert result.tasks["flaky"].attempts == 3
    task = open_store(path).get_run(result.run_id)["tasks"]["flaky"]
    assert task["status"] == "completed"
    assert task["attempts"] == 3
    assert task["result"] == "ok"


def test_every_attempt_is_in_the_history_also_those_the_task_row_stands_for(store_url):
    """A first attempt that completed its task has no attempts row of its own: the history
    (what the report draws) still lists every attempt of every session, with its times, also
    once a forced resume has re-run the task."""
    path = store_url
    flow = Flow("history")
    seen = []

    @flow.task
    def once(x):
        return x

    @flow.task(retries=1, retry_wait=0)
    def flaky(once):
        seen.append(1)
        if len(seen) == 1:
            raise ConnectionError("try again")
        return once

    first = flow.run({"x": 1}, store=path)
    store = open_store(path)
    rows = [(r["task_id"], r["attempt"], r["status"]) for r in store.attempt_rows(first.run_id)]
    assert rows == [("once", 1, "completed"), ("flaky", 1, "failed"), ("flaky", 2, "completed")]
    once_row = store.attempt_rows(first.run_id)[0]
    assert (once_row["started"], once_row["ended"]) == (first.tasks["once"].started_at,
                                                         first.tasks["once"].ended_at)
    again = flow.run({"x": 2}, store=path, resume=first.run_id, force=True)
    assert again.results["flaky"] == 2
    rows = [(r["task_id"], r["attempt"], r["status"], r["session"])
            for r in open_store(path).attempt_rows(first.run_id)]
    assert rows[:3] == [("once", 1, "completed", 1), ("flaky", 1, "failed", 1),
                        ("flaky", 2, "completed", 1)]
    assert sorted(rows[3:]) == [("flaky", 1, "completed", None), ("once", 1, "completed", None)]


# -- summary --------------------------------------------------------------------------------------

def test_summary_has_store_time_and_restored_tasks(store_url):
    path = store_url
    calls, fail = [], {"on": True}
    flow = two_step_flow("summary", lambda: 1, calls, fail)
    first = flow.run(store=path, raise_on_failure=False)
    assert first.summary["store_time"] > 0
    assert first.summary["restored_tasks"] == 0
    fail["on"] = False
    resumed = flow.run(store=path, resume=first.run_id, raise_on_failure=False)
    assert resumed.summary["restored_tasks"] == 1
    assert resumed.summary["store_time"] > 0
    assert resumed.summary["successful_tasks"] == 2

    without = flow.run(raise_on_failure=False)
    assert "store_time" not in without.summary
    assert "restored_tasks" not in without.summary


# -- run ids ----------------------------------------------------------------------------------------

def test_existing_run_id_without_resume_is_refused(store_url):
    path = store_url
    calls = []
    flow = Flow("ids")
    flow.task(lambda: calls.append("ran") or 1, id="one")
    flow.run(store=path, run_id="nightly")
    before = open_store(path).get_run("nightly")
    with pytest.raises(ResumeError, match=r"resume=") as info:
        flow.run(store=path, run_id="nightly")
    assert "nightly" in str(info.value)
    assert calls == ["ran"]  # the refused run ran nothing
    assert open_store(path).get_run("nightly") == before  # and changed nothing


@pytest.mark.parametrize("run_id", ["it's", "a?b%s%%", "nul\x00byte", "\u00e9t\u00e9 '--"],
                         ids=["quote", "placeholders", "nul", "accents-comment"])
def test_any_run_id_is_recorded_and_resumed_as_given(store_url, run_id):
    """The journal writes the run id into its statements' text where the store allows it:
    quotes, placeholders and a NUL stay the run id, never SQL."""
    path = store_url
    if "\x00" in run_id and str(path).startswith("postgres"):
        pytest.skip("PostgreSQL's text cannot hold a NUL")
    calls = []
    flow = Flow("odd-ids")
    broken = [True]

    @flow.task
    def first():
        calls.append("first")
        return {"n": 1}

    @flow.task
    def second(first):
        if broken[0]:
            raise ValueError("not yet")
        return first["n"] + 1

    failed = flow.run(store=path, run_id=run_id, raise_on_failure=False)
    assert failed.status is RunStatus.FAILED
    record = open_store(path).get_run(run_id)
    assert record["tasks"]["first"]["status"] == "completed"
    assert record["tasks"]["first"]["result"] == {"n": 1}
    assert record["tasks"]["second"]["status"] == "failed"
    broken[0] = False
    resumed = flow.run(store=path, resume=run_id)
    assert resumed.status is RunStatus.SUCCEEDED and resumed.results["second"] == 2
    assert resumed.tasks["first"].reason == "restored from the run store"
    assert calls == ["first"]
    assert [r["run_id"] for r in open_store(path).runs()] == [run_id]


def test_generated_run_ids_sort_by_start_time(store_url):
    path = store_url
    flow = Flow("sortable")
    flow.task(lambda: 1, id="one")
    ids = [flow.run(store=path).run_id for _ in range(3)]  # each starts after the last ended
    assert ids == sorted(ids)
    assert [r["run_id"] for r in open_store(path).runs()] == ids[::-1]


def test_resuming_an_unknown_run_is_refused(tmp_path):
    flow = Flow("unknown")
    flow.task(lambda: 1, id="one")
    with pytest.raises(ResumeError, match="no-such-run"):
        flow.run(store=tmp_path / "runs.db", resume="no-such-run")


# -- store failures and late results ----------------------------------------------------------------

def test_failed_store_write_stops_the_run_and_never_reports_the_task_done(tmp_path):
    path = tmp_path / "runs.db"
    locks = []
    calls = []
    flow = Flow("locked")

    @flow.task
    def grab():
        calls.append("grab")
        # another writer takes the file's write lock and keeps it past the busy timeout
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        locks.append(other)
        return 1

    @flow.task
    def after(grab):
        calls.append("after")
        return 2

    try:
        with pytest.raises(StoreError) as info:
            flow.run(store=SqliteStore(path, busy_timeout=0.2), run_id="locked-1")
    finally:
        for conn in locks:
            conn.execute("ROLLBACK")
            conn.close()
    assert calls == ["grab"]  # the run stopped
    partial = getattr(info.value, "flowdsl_result", None)
    if partial is not None:
        assert partial.status is RunStatus.FAILED
        assert "grab" not in partial.results
        # its completion was never written: the run must not report it as done
        assert partial.tasks["grab"].status is not TaskStatus.COMPLETED
    assert SqliteStore(path).get_run("locked-1")["tasks"]["grab"]["status"] != "completed"


def test_late_result_of_a_timed_out_attempt_is_never_recorded(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("late")

    release, returned = threading.Event(), threading.Event()

    @flow.task(timeout=0.1)
    def slow(context: TaskContext):
        release.wait(10)  # until the run has given up on it
        context.shared_state["late"] = True
        returned.set()
        return "too late"

    result = flow.run(store=path, run_id="late-1", raise_on_failure=False)
    assert result.tasks["slow"].status is TaskStatus.FAILED
    release.set()
    assert returned.wait(10)  # the abandoned attempt has written and returned
    task = SqliteStore(path).get_run("late-1")["tasks"]["slow"]
    assert task["status"] == "failed"
    assert "TaskTimeoutError" in task["error"]
    assert task["result"] is None
    assert sql(path, "SELECT result, delta FROM tasks WHERE task_id = 'slow'") == [(None, None)]


def test_async_flow_resumes_from_the_store(store_url):
    import asyncio

    path = store_url
    calls, fail = [], {"on": True}
    flow = Flow("async")

    @flow.task
    async def fetch():
        calls.append("fetch")
        await asyncio.sleep(0)
        return {"when": dt.date(2024, 1, 2), "ids": (1, 2)}

    @flow.task
    async def store_it(fetch):
        calls.append("store_it")
        if fail["on"]:
            raise RuntimeError("db down")
        return len(fetch["ids"])

    first = flow.run(store=path, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    fail["on"] = False
    resumed = asyncio.run(flow.arun(store=path, resume=first.run_id, raise_on_failure=False))
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["fetch", "store_it", "store_it"]
    assert same(resumed.results["fetch"], {"when": dt.date(2024, 1, 2), "ids": (1, 2)})
    assert resumed.results["store_it"] == 2


# -- JSON codec -----------------------------------------------------------------------------------

EXTRAS = {
    "tuple": (1, "two", (3.0, None)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "bytes": b"\x00\xffraw",
    "empty": ((), set(), frozenset(), b"", {}, []),
    "aware": dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone.utc),
    "naive": dt.datetime(2024, 1, 1, 12, 0),
    "date": dt.date(1999, 12, 31),
    "decimal": Decimal("1.10"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "path": Path("/data/in.csv"),
    "int_keys": {1: "one", 2: {3: (4, 5)}, -7: None},
    "mixed_keys": {1: "int", "1": "str"},
    "tagged_lookalike": {"$flowdsl": "tuple", "v": [1, 2]},
    "nested": [{"rows": [(1, {2}), frozenset({(3, 4)})], "when": dt.date(2020, 5, 17)}],
    "floats": [0.1, -0.0, 1e308, float("inf"), float("-inf")],
    "bigint": 2**100,
    "text": "héllo \u2603 \n\"quoted\"",
}


def test_values_round_trip_equal_and_same_type(store_url):
    path = store_url
    calls, fail = [], {"on": True}
    flow = Flow("extras")

    @flow.task
    def make():
        calls.append("make")
        return EXTRAS

    @flow.task
    def write(context: TaskContext):
        calls.append("write")
        context.shared_state["extras"] = EXTRAS
        context.shared_state[7] = (1, 2)
        return None

    @flow.task
    def gate(make, write):
        if fail["on"]:
            raise RuntimeError("not yet")
        return "open"

    first = flow.run(store=path, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    fail["on"] = False
    resumed = flow.run(store=path, resume=first.run_id, raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["make", "write"]  # restored from the store, not recomputed
    restored = resumed.results["make"]
    assert restored is not EXTRAS
    for key, value in EXTRAS.items():
        assert same(restored[key], value), key
    assert same(restored, EXTRAS)
    assert same(resumed.context.shared_state["extras"], EXTRAS)
    assert same(resumed.context.shared_state[7], (1, 2))
    # the history shows the decoded value too (JSON is safe to decode)
    shown = open_store(path).get_run(first.run_id)["tasks"]["make"]["result"]
    assert same(shown, EXTRAS)


@pytest.mark.parametrize("value, path_text, type_text", [
    (object(), "the result", "object"),
    (Point(1, 2), "the result", "Point"),
    ({"points": [1, Point(1, 2)]}, "the result['points'][1]", "Point"),
    ({"ordered": collections.OrderedDict(a=1)}, "the result['ordered']", "OrderedDict"),
    ([collections.Counter("aab")], "the result[0]", "Counter"),
    ({1: {"f": Fraction(1, 3)}}, "the result[1]['f']", "Fraction"),
])
def test_value_json_cannot_hold_fails_the_task_with_serialization_error(
        tmp_path, value, path_text, type_text):
    path = tmp_path / "runs.db"
    calls = []
    flow = Flow("unjsonable")

    @flow.task
    def setup(context: TaskContext):
        context.shared_state["mode"] = "original"
        context.shared_state["gone"] = "deleted by awkward"
        return 1

    @flow.task(retries=3, retry_wait=0)
    def awkward(setup, context: TaskContext):
        calls.append("awkward")
        context.shared_state["mode"] = "changed by awkward"
        context.shared_state["extra"] = "added by awkward"
        del context.shared_state["gone"]
        return value

    @flow.task
    def after(awkward):
        calls.append("after")

    @flow.task
    def independent():
        return "still runs"

    result = flow.run({"seed": 1}, store=path, run_id="ser", raise_on_failure=False)
    task = result.tasks["awkward"]
    assert task.status is TaskStatus.FAILED
    assert isinstance(task.error, SerializationError)
    assert isinstance(task.error, TypeError)  # SerializationError(FlowError, TypeError)
    message = str(task.error)
    assert "awkward" in message
    assert path_text in message
    assert type_text in message
    assert re.search(r"serializer=['\"]pickle['\"]", message)
    assert calls == ["awkward"]  # not retried, even with retries=3
    assert task.attempts == 1
    assert result.tasks["after"].status is TaskStatus.SKIPPED
    assert result.tasks["independent"].status is TaskStatus.COMPLETED
    assert result.status is RunStatus.FAILED
    assert "awkward" not in result.results
    # its shared-state writes are undone
    state = result.context.shared_state
    assert state["mode"] == "original"
    assert "extra" not in state
    assert state["gone"] == "deleted by awkward"
    stored = SqliteStore(path).get_run("ser")["tasks"]["awkward"]
    assert stored["status"] == "failed"
    assert "SerializationError" in stored["error"]
    assert stored["result"] is None


def test_serialization_error_undoes_a_deletion_and_produced_keys(tmp_path):
    flow = Flow("undo")

    @flow.task
    def setup(context: TaskContext):
        context.shared_state["keep"] = [1, 2]
        return None

    @flow.task(produces=["out"], depends_on=["setup"])
    def bad(context: TaskContext):
        context.shared_state.pop("keep")
        return {"out": object()}

    result = flow.run(store=tmp_path / "runs.db", raise_on_failure=False)
    assert isinstance(result.tasks["bad"].error, SerializationError)
    assert result.context.shared_state == {"keep": [1, 2]}


def test_unjsonable_shared_state_write_fails_the_task(tmp_path):
    flow = Flow("badwrite")

    @flow.task
    def writer(context: TaskContext):
        context.shared_state["handle"] = Point(0, 0)
        return "fine result"

    result = flow.run(store=tmp_path / "runs.db", raise_on_failure=False)
    error = result.tasks["writer"].error
    assert isinstance(error, SerializationError)
    assert "writer" in str(error) and "Point" in str(error)
    assert "handle" not in result.context.shared_state


def test_flowdsl_never_falls_back_to_pickle(tmp_path):
    flow = Flow("nofallback")
    flow.task(lambda: Fraction(1, 3), id="frac")
    result = flow.run(store=tmp_path / "runs.db", raise_on_failure=False)
    assert isinstance(result.tasks["frac"].error, SerializationError)
    assert sql(tmp_path / "runs.db", "SELECT COUNT(*) FROM tasks WHERE codec = 'pickle'")[0][0] == 0


# -- pickle opt-in ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["task", "flow"])
def test_pickle_serializer_stores_and_resume_restores(tmp_path, where):
    path = tmp_path / "runs.db"
    calls, fail = [], {"on": True}
    flow = Flow("pickled", serializer="pickle") if where == "flow" else Flow("pickled")
    options = {"serializer": "pickle"} if where == "task" else {}
    value = {"point": Point(1, 2), "third": Fraction(1, 3), "ordered": collections.OrderedDict(z=1)}

    @flow.task(**options)
    def compute(context: TaskContext):
        calls.append("compute")
        context.shared_state["frac"] = Fraction(2, 3)
        return value

    @flow.task
    def gate(compute):
        calls.append("gate")
        if fail["on"]:
            raise RuntimeError("closed")
        return int(compute["third"] * 3)

    first = flow.run(store=path, raise_on_failure=False)
    assert first.tasks["compute"].status is TaskStatus.COMPLETED
    codec = sql(path, "SELECT codec FROM tasks WHERE task_id = 'compute'")[0][0]
    assert codec == "pickle"
    shown = SqliteStore(path).get_run(first.run_id)["tasks"]["compute"]["result"]
    assert re.fullmatch(r"<pickle value, \d+ bytes, not loaded>", shown)

    fail["on"] = False
    resumed = flow.run(store=path, resume=first.run_id, raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["compute", "gate", "gate"]
    restored = resumed.results["compute"]
    assert restored == value
    assert type(restored["point"]) is Point
    assert type(restored["ordered"]) is collections.OrderedDict
    assert resumed.context.shared_state["frac"] == Fraction(2, 3)
    assert resumed.results["gate"] == 1


# -- serializer / tag disagreements ---------------------------------------------------------------

def _failed_run(path, flow_serializer="json"):
    calls, fail = [], {"on": True}
    flow = Flow("codec", serializer=flow_serializer)

    @flow.task
    def alpha():
        calls.append("alpha")
        return (1, 2)

    @flow.task
    def beta(alpha):
        calls.append("beta")
        if fail["on"]:
            raise RuntimeError("later")
        return alpha

    first = flow.run(store=path, run_id="codec-run", raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    fail["on"] = False
    calls.clear()
    return flow, calls


@pytest.mark.parametrize("flow_serializer, stored_codec, stored_value", [
    ("json", "pickle", pickle.dumps((1, 2))),
    ("pickle", "json", '{"$flowdsl":"tuple","v":[1,2]}'),
    ("json", "json", '{"$flowdsl":"os.system","v":"echo hi"}'),  # a tag not in the table
    ("json", "json", "{not json"),
])
def test_stored_value_that_disagrees_is_a_store_error_before_any_task(
        tmp_path, flow_serializer, stored_codec, stored_value):
    path = tmp_path / "runs.db"
    flow, calls = _failed_run(path, flow_serializer)
    write_sql(path, "UPDATE tasks SET result = ?, codec = ? WHERE task_id = 'alpha'",
              (stored_value, stored_codec))
    before = SqliteStore(path).get_run("codec-run")
    with pytest.raises(StoreError) as info:
        flow.run(store=path, resume="codec-run", raise_on_failure=False)
    message = str(info.value)
    assert "codec-run" in message and "alpha" in message
    assert calls == []  # before any task runs
    after = SqliteStore(path).get_run("codec-run")
    assert after["sessions"] == before["sessions"]
    assert after["status"] == "failed"


# -- two processes ----------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import os, sys, time
    from flowdsl import Flow

    store, name, here = sys.argv[1], sys.argv[2], sys.argv[3]
    flow = Flow(name)

    def make(i):
        def handler(context):
            context.shared_state[f"k{i}"] = [name, i]
            time.sleep(0.001)
            return {"task": i, "by": name}
        return handler

    for i in range(50):
        flow.task(make(i), id=f"t{i:02d}", depends_on=[f"t{i - 1:02d}"] if i else None)

    open(os.path.join(here, name + ".ready"), "w").close()
    go = os.path.join(here, "go")
    while not os.path.exists(go):
        time.sleep(0.001)
    result = flow.run(store=store, run_id=name)
    print(result.status.value, len(result.results))
    sys.exit(0 if result.status.value == "succeeded" else 1)
""")


@pytest.mark.slow
def test_two_processes_write_one_store_at_the_same_time(tmp_path):
    path = tmp_path / "shared.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    names = ["writer-a", "writer-b"]
    procs = [subprocess.Popen([sys.executable, str(script), str(path), name, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names]
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"{n}.ready").exists() for n in names):
            assert time.monotonic() < deadline, "writers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        (tmp_path / "go").touch()  # both start their runs together
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out.split() == ["succeeded", "50"]

    store = SqliteStore(path)
    runs = {r["run_id"]: r for r in store.runs()}
    assert set(runs) == set(names)
    for name in names:
        assert runs[name]["status"] == "succeeded"
        assert runs[name]["counts"] == {"completed": 50}
        record = store.get_run(name)
        assert record["tasks"]["t49"]["result"] == {"task": 49, "by": name}
    # the two runs overlapped in time (they really wrote the file at the same time)
    a, b = (runs[n] for n in names)
    assert a["started"] < b["ended"] and b["started"] < a["ended"]
    assert sql(path, "PRAGMA integrity_check") == [("ok",)]


# -- Hypothesis: JSON-able results round-trip --------------------------------------------------------

_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=12) | st.binary(max_size=12)
           | st.sets(st.integers(), max_size=5) | st.frozensets(st.integers(), max_size=4))
json_values = st.recursive(
    _leaves,
    lambda children: (st.lists(children, max_size=4)
                      | st.lists(children, max_size=4).map(tuple)
                      | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4)),
    max_leaves=20,
)


class _RoundTrip:
    """One flow and one store for all examples: ``emit`` returns the example's value and
    writes it to the shared state; ``gate`` fails in the first session, so resume restores."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = None
        self.fail = True
        self.emitted = 0
        self.flow = flow = Flow("roundtrip")

        @flow.task(produces=["value"])
        def emit():
            self.emitted += 1
            return {"value": self.value, "again": [self.value]}

        @flow.task
        def gate(emit):
            if self.fail:
                raise RuntimeError("gate closed")
            return True


_roundtrip_dir = tempfile.TemporaryDirectory(prefix="flowdsl-roundtrip-")


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_random_json_values_round_trip_through_resume(value):
    rt = _RoundTrip(Path(_roundtrip_dir.name) / "runs.db")
    rt.value = value
    first = rt.flow.run(store=rt.path, raise_on_failure=False)
    assert first.tasks["emit"].status is TaskStatus.COMPLETED, first.tasks["emit"].error
    rt.value, rt.fail = "poisoned: emit must not run again", False
    resumed = rt.flow.run(store=rt.path, resume=first.run_id, raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert rt.emitted == 1
    assert same(resumed.results["emit"], {"value": value, "again": [value]})
    assert same(resumed.context.shared_state["value"], value)


# -- a malicious pickle planted in a store -----------------------------------------------------------

class _Evil:
    """Unpickling this creates ``marker`` (it stands for any code an attacker wants run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_the_planted_payload_is_really_malicious(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Evil(control)))
    assert control.exists()  # so the marker staying absent below means something


@pytest.mark.parametrize("column", ["result", "delta", "inputs"])
def test_malicious_pickle_is_never_loaded_by_listing_showing_or_json_resume(tmp_path, column):
    path = tmp_path / "runs.db"
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    calls, fail = [], {"on": True}
    flow = Flow("victim")

    @flow.task
    def fetch(url, context: TaskContext):
        calls.append("fetch")
        context.shared_state["fetched"] = url
        return {"url": url}

    @flow.task
    def parse(fetch):
        calls.append("parse")
        if fail["on"]:
            raise RuntimeError("parser down")
        return "parsed"

    flow.run({"url": "https://example.org"}, store=path, run_id="victim-1", raise_on_failure=False)
    if column == "inputs":
        write_sql(path, "UPDATE runs SET inputs = ?, inputs_codec = 'pickle' "
                        "WHERE run_id = 'victim-1'", (payload,))
    else:
        write_sql(path, f"UPDATE tasks SET {column} = ?, codec = 'pickle' "
                        "WHERE run_id = 'victim-1' AND task_id = 'fetch'", (payload,))
    calls.clear()
    fail["on"] = False

    store = SqliteStore(path)
    listing = store.runs()
    assert [r["run_id"] for r in listing] == ["victim-1"]
    record = store.get_run("victim-1")
    shown = f"<pickle value, {len(payload)} bytes, not loaded>"
    if column == "inputs":
        assert record["inputs"] == shown
    elif column == "result":
        assert record["tasks"]["fetch"]["result"] == shown
    assert not marker.exists()

    with pytest.raises(StoreError) as info:
        flow.run(store=path, resume="victim-1", raise_on_failure=False)
    assert "victim-1" in str(info.value)
    if column != "inputs":
        assert "fetch" in str(info.value)
    assert not marker.exists()
    assert calls == []

    # listing and showing after the refused resume are still harmless
    store.runs()
    store.get_run("victim-1")
    assert not marker.exists()
