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

    first = flow.run(store=pg_dsn, raise_on_failure=False)
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
    flow.run(store=pg_dsn, run_id="shared", raise_on_failure=False)
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


def test_pickle_opt_in_round_trips_and_is_never_loaded_for_showing(pg_dsn):
    from fractions import Fraction

    flow = Flow("pickled", serializer="pickle")
    fail = {"on": True}

    @flow.task
    def make():
        return {"third": Fraction(1, 3)}

    @flow.task
    def use(make):
        if fail["on"]:
            raise RuntimeError("not yet")
        return make["third"] * 3

    first = flow.run(store=pg_dsn, raise_on_failure=False)
    shown = PostgresStore(pg_dsn).get_run(first.run_id)["tasks"]["make"]["result"]
    assert shown.startswith("<pickle value, ") and shown.endswith(" bytes, not loaded>")
    fail["on"] = False
    resumed = flow.run(store=pg_dsn, resume=first.run_id)
    assert resumed.results == {"make": {"third": Fraction(1, 3)}, "use": Fraction(1)}


def test_a_tampered_stored_value_is_a_store_error_before_any_task(pg_cluster, pg_schema, pg_dsn):
    calls: list = []
    fail = {"on": True}
    flow = chain("tamper", calls, fail)
    first = flow.run(store=pg_dsn, raise_on_failure=False)
    pg_cluster.sql(pg_schema, "UPDATE tasks SET result = convert_to('{not json', 'UTF8') "
                              "WHERE task_id = 'a'")
    fail["on"] = False
    with pytest.raises(StoreError) as info:
        flow.run(store=pg_dsn, resume=first.run_id)
    assert "'a'" in str(info.value) and first.run_id in str(info.value)
    assert calls == ["a", "b"]  # nothing ran on resume


def test_psycopg_is_imported_only_when_a_postgres_store_is_used():
    code = ("import sys, flowdsl\n"
            "from flowdsl.store import open_store\n"
            "flowdsl.SqliteStore\n"
            "print('psycopg' in sys.modules)\n"
            "flowdsl.PostgresStore\n"
            "print('psycopg' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_a_connection_dropped_between_runs_is_reopened_for_reading_and_opening(
        pg_cluster, pg_schema, pg_dsn):
    store = PostgresStore(pg_dsn)
    chain("between", []).run(store=store, run_id="one")

    def drop() -> int:
        pid = store.connection.info.backend_pid
        pg_cluster.sql(pg_schema, "SELECT pg_terminate_backend(%s)", (pid,))
        return pid

    first = drop()
    assert [r["run_id"] for r in store.runs()] == ["one"]  # a read reconnects once
    assert store.connection.info.backend_pid != first
    drop()
    calls: list = []
    result = chain("between", calls).run(store=store, run_id="two")  # opening the run too
    assert result.status is RunStatus.SUCCEEDED and calls == ["a", "b", "c"]
    assert sorted(r["run_id"] for r in store.runs()) == ["one", "two"]


def test_two_processes_starting_one_new_run_id_exactly_one_runs_it(pg_dsn, tmp_path):
    script = tmp_path / "starter.py"
    script.write_text(textwrap.dedent('''
        import sys
        from flowdsl import Flow, ResumeError

        flow = Flow("race")

        @flow.task
        def only():
            print("ran", flush=True)
            return 1

        sys.stdin.readline()  # both processes are ready: go
        try:
            flow.run(store=sys.argv[1], run_id="same-id")
        except ResumeError as exc:
            print(f"ResumeError: {exc}", flush=True)
            sys.exit(5)
    '''))
    procs = [subprocess.Popen([sys.executable, str(script), pg_dsn], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    try:
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 5], outs
    assert sum(out.count("ran") for out, _ in outs) == 1
    assert any("already exists" in out and "resume=" in out for out, _ in outs)
    assert PostgresStore(pg_dsn).get_run("same-id")["status"] == "succeeded"


def test_a_run_id_taken_while_opening_it_is_a_resume_error(pg_cluster, pg_schema, pg_dsn):
    import threading

    PostgresStore(pg_dsn).runs()  # the tables exist
    other = psycopg.connect(pg_cluster.dsn(pg_schema))  # a transaction of another process
    other.execute("INSERT INTO runs (run_id, flow, status, started, total_tasks, inputs_codec, "
                  "fingerprints) VALUES ('taken', 'x', 'running', 0, 0, 'json', '{}')")
    outcome: list = []
    calls: list = []

    def start():
        try:
            chain("race", calls).run(store=pg_dsn, run_id="taken")
            outcome.append("ran")
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    runner = threading.Thread(target=start)
    runner.start()
    # the runner saw no row 'taken' and now waits on the unique key the other insert holds
    until(lambda: pg_cluster.sql(pg_schema, "SELECT count(*) FROM pg_locks l JOIN "
                                            "pg_stat_activity a ON a.pid = l.pid WHERE NOT "
                                            "l.granted AND a.query LIKE 'INSERT INTO runs%%'")
          [0][0] > 0, "the second insert to wait")
    other.commit()
    other.close()
    runner.join(timeout=60)
    assert len(outcome) == 1 and isinstance(outcome[0], ResumeError), outcome
    assert "already exists" in str(outcome[0]) and "resume=" in str(outcome[0])
    assert calls == []


def test_resuming_a_succeeded_run_executes_nothing_and_writes_nothing(pg_cluster, pg_schema,
                                                                      pg_dsn):
    calls: list = []
    flow = chain("done", calls)
    first = flow.run(store=pg_dsn)

    def every_row_version():  # xmin changes with any write to a row, even of equal values
        return {table: pg_cluster.sql(pg_schema, f"SELECT xmin::text, * FROM {table} ORDER BY 2, 3")
                for table in ("runs", "sessions", "tasks", "attempts", "flowdsl_leases")}

    before = every_row_version()
    resumed = flow.run(store=pg_dsn, resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.results == first.results
    assert calls == ["a", "b", "c"]
    assert every_row_version() == before


def test_a_task_longer_than_the_lease_keeps_its_run(pg_cluster, pg_schema, pg_dsn):
    refused: list = []
    holder: dict = {}

    def during(task_id):
        if task_id != "b":
            return
        started = pg_cluster.sql(pg_schema, "SELECT clock_timestamp()")[0][0]
        # wait, on the database's clock, for more than a whole lease after b started
        until(lambda: pg_cluster.sql(pg_schema, "SELECT clock_timestamp() > %s + interval "
                                                "'0.8 seconds'", (started,))[0][0], "a lease")
        try:
            holder["flow"].run(store=pg_dsn, resume="long")
        except ResumeError as exc:
            refused.append(str(exc))

    flow = holder["flow"] = chain("long", [], during=during)
    result = flow.run(store=PostgresStore(pg_dsn, lease=0.6), run_id="long")
    assert result.status is RunStatus.SUCCEEDED
    assert len(refused) == 1 and str(os.getpid()) in refused[0] and "lease" in refused[0]
