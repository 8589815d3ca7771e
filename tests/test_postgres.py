"""The team store on a real PostgreSQL server (tests/pg.py starts one): the DSN forms, the
versioned schema, values, the lease (heartbeat, takeover, a stalled owner fenced off) and the
faults a network database brings (a dropped connection, a restart, a statement timeout).
The durable tests shared with SQLite (resume, kill -9, two resumers, round-trips) take the
``store_url`` fixture in their own files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from urllib.parse import quote

import pytest

from flowdsl import Flow, ResumeError, RunStatus, StoreError, TaskStatus

psycopg = pytest.importorskip("psycopg", reason="the `postgres` extra (psycopg 3) is not installed")

from flowdsl import PostgresStore  # noqa: E402
from flowdsl.store.schema import SCHEMA_VERSION  # noqa: E402

RESTORED = "restored from the run store"


def chain(name: str, calls: list, fail: dict | None = None, during=None) -> Flow:
    """a -> b -> c; ``during(task_id)`` is called inside each task; b fails while fail["on"]."""
    flow = Flow(name)

    @flow.task
    def a():
        calls.append("a")
        if during:
            during("a")
        return {"n": 1}

    @flow.task
    def b(a):
        calls.append("b")
        if during:
            during("b")
        if fail and fail["on"]:
            raise RuntimeError("b is not ready")
        return a["n"] + 1

    @flow.task
    def c(b):
        calls.append("c")
        return b + 1

    return flow


def until(predicate, what: str, timeout: float = 30.0):
    """Poll ``predicate`` (a database query, a process state) until it holds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value


def lease_expired(pg_cluster, schema: str, run_id: str) -> bool:
    rows = pg_cluster.sql(schema, "SELECT heartbeat_at + lease * interval '1 second' < "
                                  "clock_timestamp() FROM flowdsl_leases WHERE run_id = %s",
                          (run_id,))
    return not rows or rows[0][0]


# -- selecting the store ----------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_dsn_as_store_selects_postgresql(pg_cluster, pg_schema, scheme):
    dsn = f"{scheme}://flowdsl@127.0.0.1:{pg_cluster.port}/postgres?options=" \
          + quote(f"-csearch_path={pg_schema}")
    calls: list = []
    result = chain("dsn", calls).run(store=dsn, run_id="by-dsn")
    assert result.status is RunStatus.SUCCEEDED
    rows = pg_cluster.sql(pg_schema, "SELECT run_id, status FROM runs")
    assert rows == [("by-dsn", "succeeded")]
    assert PostgresStore(dsn).get_run("by-dsn")["tasks"]["c"]["result"] == 3
    # the run ended: its lease is released
    assert pg_cluster.sql(pg_schema, "SELECT * FROM flowdsl_leases") == []


def test_store_label_hides_the_password():
    store = PostgresStore("postgresql://ann:s3cret@db.example:5432/runs")
    assert "s3cret" not in store.label and "s3cret" not in repr(store)
    assert store.label == "postgresql://ann:***@db.example:5432/runs"


@pytest.mark.parametrize("bad", [{"lease": 0}, {"lease": -1.0}, {"statement_timeout": 0}])
def test_bad_settings_are_refused_naming_them(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        PostgresStore("postgresql://localhost/db", **bad)


def test_cli_reads_the_dsn_from_store_and_flowdsl_store(pg_dsn, tmp_path):
    target = tmp_path / "pipe.py"
    target.write_text(textwrap.dedent('''
        from flowdsl import Flow
        flow = Flow("cli-pg")

        @flow.task
        def hello(name):
            return f"hello {name}"
    '''))
    env = {**os.environ, "FLOWDSL_STORE": pg_dsn}
    ran = subprocess.run([sys.executable, "-m", "flowdsl", "run", str(target), "--set",
                          "name=pg", "--run-id", "cli-1", "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["tasks"]["hello"]["result"] == "hello pg"
    env.pop("FLOWDSL_STORE")
    listed = subprocess.run([sys.executable, "-m", "flowdsl", "runs", "--store", pg_dsn,
                             "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ["cli-1"]


# -- the schema -------------------------------------------------------------------------------

def test_schema_version_is_a_row_of_flowdsl_meta(pg_cluster, pg_schema, pg_dsn):
    PostgresStore(pg_dsn).runs()
    assert pg_cluster.sql(pg_schema, "SELECT key, value FROM flowdsl_meta") == [
        ("schema_version", str(SCHEMA_VERSION))]


def test_a_newer_schema_is_refused_naming_both_versions_before_any_write(pg_cluster, pg_schema,
                                                                         pg_dsn):
    pg_cluster.sql(pg_schema, "CREATE TABLE flowdsl_meta (key TEXT PRIMARY KEY, value TEXT)")
    pg_cluster.sql(pg_schema, "INSERT INTO flowdsl_meta VALUES ('schema_version', '99')")
    calls: list = []
    with pytest.raises(StoreError) as info:
        chain("newer", calls).run(store=pg_dsn)
    assert "99" in str(info.value) and str(SCHEMA_VERSION) in str(info.value)
    assert calls == []
    tables = pg_cluster.sql(pg_schema, "SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = %s", (pg_schema,))
    assert tables == [("flowdsl_meta",)]  # nothing created, nothing written


def test_schema_is_migrated_forward_keeping_the_runs(pg_cluster, pg_schema, pg_dsn, monkeypatch):
    chain("old", []).run(store=pg_dsn, run_id="before")
    from flowdsl.store import pgsql, postgres, schema

    newer = {**schema.MIGRATIONS, SCHEMA_VERSION + 1: ["ALTER TABLE runs ADD COLUMN label TEXT"]}
    monkeypatch.setattr(postgres, "MIGRATIONS", newer)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(pgsql, "MIGRATIONS", newer)
    store = PostgresStore(pg_dsn)
    assert [r["run_id"] for r in store.runs()] == ["before"]
    assert pg_cluster.sql(pg_schema, "SELECT value FROM flowdsl_meta") == [
        (str(SCHEMA_VERSION + 1),)]
    assert pg_cluster.sql(pg_schema, "SELECT label FROM runs") == [(None,)]


# -- values -----------------------------------------------------------------------------------

def test_nul_characters_and_non_finite_floats_keep_their_promise(pg_dsn):
    value = {"nul": "a\x00b", "\x00key": [float("nan"), float("inf"), float("-inf"), -0.0],
             "bytes": b"\x00\x01"}
    flow = Flow("nul")
    fail = {"on": True}

    @flow.task
    def make():
        return value

    @flow.task
    def check(make):
        if fail["on"]:
            raise ValueError("bad \x00 byte")
        return "ok"

    first = flow.run(store=pg_dsn)
    store = PostgresStore(pg_dsn)
    record = store.get_run(first.run_id)
    assert "bad" in record["tasks"]["check"]["error"] and "byte" in record["tasks"]["check"]["error"]
    fail["on"] = False
    resumed = flow.run(store=pg_dsn, resume=first.run_id)
    assert resumed.tasks["make"].reason == RESTORED
    got = resumed.results["make"]
    assert got["nul"] == "a\x00b" and got["bytes"] == b"\x00\x01"
    nan, inf, ninf, zero = got["\x00key"]
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf
    assert math.copysign(1.0, zero) == -1.0


# -- the lease ---------------------------------------------------------------------------------

def test_owner_renews_its_lease_every_third_of_it_on_the_database_clock(pg_cluster, pg_schema,
                                                                         pg_dsn):
    seen: list = []

    def during(task_id):
        if task_id != "b":
            return
        query = "SELECT heartbeat_at, lease FROM flowdsl_leases"
        first = pg_cluster.sql(pg_schema, query)[0]
        # no write happens while b runs: only the heartbeat can move heartbeat_at
        later = until(lambda: (row := pg_cluster.sql(pg_schema, query)[0])[0] > first[0] and row,
                      "a heartbeat")
        seen.extend([first, later])

    result = chain("beat", [], during=during).run(store=PostgresStore(pg_dsn, lease=0.3))
    assert result.status is RunStatus.SUCCEEDED
    assert seen[0][1] == 0.3  # the owner's lease is recorded with it
    assert pg_cluster.sql(pg_schema, "SELECT * FROM flowdsl_leases") == []


def test_a_live_lease_elsewhere_is_refused_naming_host_and_pid_until_it_expires(
        pg_cluster, pg_schema, pg_dsn):
    calls: list = []
    fail = {"on": True}
    flow = chain("elsewhere", calls, fail)
    flow.run(store=pg_dsn, run_id="shared")
    # the run is now in progress on another machine, whose lease is live
    pg_cluster.sql(pg_schema, "UPDATE runs SET status = 'running', owner_host = 'build-7', "
                              "owner_pid = 4242, owner_start = '1'")
    pg_cluster.sql(pg_schema, "INSERT INTO flowdsl_leases VALUES "
                              "('shared', 9, 'build-7', 4242, 60, clock_timestamp())")
    fail["on"] = False
    with pytest.raises(ResumeError) as info:
        flow.run(store=pg_dsn, resume="shared")
    assert "build-7" in str(info.value) and "4242" in str(info.value)
    # a process of that number on this host is no reason to take over elsewhere's run
    assert calls == ["a", "b"]
    pg_cluster.sql(pg_schema, "UPDATE flowdsl_leases SET heartbeat_at = clock_timestamp() "
                              "- interval '61 seconds'")
    resumed = flow.run(store=pg_dsn, resume="shared")
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["a", "b", "b", "c"]


STALLED = textwrap.dedent('''
    import sys
    from flowdsl import Flow, PostgresStore

    flow = Flow("stalled")

    @flow.task
    def first():
        return 1

    @flow.task
    def slow(first):
        print("slow-started", flush=True)
        sys.stdin.readline()  # held here (and stopped) by the test
        return first + 1

    @flow.task
    def last(slow):
        return slow + 1

    if __name__ == "__main__":
        try:
            flow.run(store=PostgresStore(sys.argv[1], lease=float(sys.argv[2])), run_id="stall")
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}", flush=True)
            sys.exit(7)
''')


def test_a_stalled_owner_is_taken_over_and_its_next_write_fails_writing_nothing(
        pg_cluster, pg_schema, pg_dsn, tmp_path):
    script = tmp_path / "stalled.py"
    script.write_text(STALLED)
    owner = subprocess.Popen([sys.executable, str(script), pg_dsn, "1.0"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "slow-started"
        owner.send_signal(signal.SIGSTOP)  # the whole process stalls, its heartbeat too
        until(lambda: lease_expired(pg_cluster, pg_schema, "stall"), "the lease to expire")
        sys.path.insert(0, str(tmp_path))
        try:
            import stalled
        finally:
            sys.path.remove(str(tmp_path))
        stalled.slow.__globals__["sys"] = type("S", (), {"stdin": type("I", (), {
            "readline": staticmethod(lambda: "")})})  # this process's copy does not wait
        before = pg_cluster.sql(pg_schema, "SELECT count(*) FROM attempts")
        resumed = stalled.flow.run(store=pg_dsn, resume="stall")
        assert resumed.status is RunStatus.SUCCEEDED
        snapshot = pg_cluster.sql(pg_schema, "SELECT * FROM tasks ORDER BY task_id")
        attempts = pg_cluster.sql(pg_schema, "SELECT * FROM attempts ORDER BY 1, 2, 3, 4")
        assert before[0][0] < len(attempts)

        owner.send_signal(signal.SIGCONT)
        out, err = owner.communicate("go\n", timeout=60)
        assert owner.returncode == 7, err
        assert "StoreError" in out and "taken over" in out and str(os.getpid()) in out
        # the stalled owner wrote nothing after the takeover
        assert pg_cluster.sql(pg_schema, "SELECT * FROM tasks ORDER BY task_id") == snapshot
        assert pg_cluster.sql(pg_schema, "SELECT * FROM attempts ORDER BY 1, 2, 3, 4") == attempts
        record = PostgresStore(pg_dsn).get_run("stall")
        assert record["status"] == "succeeded"
        assert [s["pid"] for s in record["sessions"]] == [owner.pid, os.getpid()]
    finally:
        if owner.poll() is None:
            owner.send_signal(signal.SIGCONT)
            owner.kill()
        owner.wait(timeout=30)


# -- faults ------------------------------------------------------------------------------------

def test_a_connection_dropped_between_tasks_is_reopened_once(pg_cluster, pg_schema, pg_dsn):
    store = PostgresStore(pg_dsn)
    dropped: list = []

    def during(task_id):
        if task_id == "b":  # the server ends the store's connection while b runs
            pid = store.connection.info.backend_pid
            pg_cluster.sql(pg_schema, "SELECT pg_terminate_backend(%s)", (pid,))
            dropped.append(pid)

    calls: list = []
    result = chain("dropped", calls, during=during).run(store=store, run_id="drop")
    assert dropped and result.status is RunStatus.SUCCEEDED
    assert store.connection.info.backend_pid != dropped[0]  # a new connection
    record = store.get_run("drop")
    assert record["status"] == "succeeded"
    assert {t: v["status"] for t, v in record["tasks"].items()} == dict.fromkeys("abc", "completed")
    assert calls == ["a", "b", "c"]


def test_a_database_restart_between_writes_is_survived(pg_cluster, pg_dsn):
    def during(task_id):
        if task_id == "b":
            pg_cluster.stop()
            pg_cluster.start()

    calls: list = []
    try:
        result = chain("restart", calls, during=during).run(store=pg_dsn, run_id="bounce")
    finally:
        pg_cluster.start_if_stopped()
    assert result.status is RunStatus.SUCCEEDED
    assert PostgresStore(pg_dsn).get_run("bounce")["status"] == "succeeded"


def test_a_database_down_mid_run_stops_it_losing_nothing_and_resume_continues(
        pg_cluster, pg_schema, pg_dsn):
    def during(task_id):
        if task_id == "b" and len(calls) == 2:
            pg_cluster.stop()  # down: the write of b's completion cannot reconnect

    calls: list = []
    flow = chain("down", calls, during=during)
    try:
        with pytest.raises(StoreError):
            flow.run(store=PostgresStore(pg_dsn, lease=1.0, connect_timeout=2),
                     run_id="down")
    finally:
        pg_cluster.start_if_stopped()
    assert calls == ["a", "b"]  # the run stopped
    record = PostgresStore(pg_dsn).get_run("down")
    assert record["status"] == "running"  # until its lease frees it
    assert record["tasks"]["a"]["status"] == "completed"  # nothing completed is lost
    assert record["tasks"]["b"]["status"] != "completed"
    until(lambda: lease_expired(pg_cluster, pg_schema, "down"), "the lease to expire")
    resumed = flow.run(store=pg_dsn, resume="down")
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.tasks["a"].reason == RESTORED
    assert calls == ["a", "b", "b", "c"]


def test_a_statement_timeout_stops_the_run_with_store_error(pg_cluster, pg_schema, pg_dsn):
    holders: list = []

    def during(task_id):
        if task_id == "a":  # another session locks the tasks table past the timeout
            other = psycopg.connect(pg_cluster.dsn(pg_schema))
            other.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            holders.append(other)

    calls: list = []
    store = PostgresStore(pg_dsn, statement_timeout=0.2)
    try:
        with pytest.raises(StoreError) as info:
            chain("timeout", calls, during=during).run(store=store, run_id="slow-db")
    finally:
        for other in holders:
            other.rollback()
            other.close()
    assert "statement timeout" in str(info.value)
    assert calls == ["a"]
    partial = getattr(info.value, "flowdsl_result", None)
    if partial is not None:
        assert partial.tasks["a"].status is not TaskStatus.COMPLETED
    record = store.get_run("slow-db")
    assert record["status"] == "running"
    assert record["tasks"]["a"]["status"] != "completed"
