"""Issue 11 on the team store. Reliability 1: a Ctrl-C (a real SIGINT) arriving while
PostgreSQL commits a task's completion waits for the COMMIT, so the completion stays
committed and completed, and the task never runs again on resume. Reliability 7: after a
`StoreError` the run stays RUNNING but this very process can resume it at once (the failed
session gives its lease up when the server still lets it)."""

from __future__ import annotations

import signal

import pytest

from flowdsl import Flow, RunStatus, StoreError, TaskStatus

psycopg = pytest.importorskip("psycopg", reason="the `postgres` extra (psycopg 3) is not installed")

from flowdsl import PostgresStore  # noqa: E402
from tests.test_store_faults import two_task_flow  # noqa: E402


class Hooked:
    """A connection that sends SIGINT to this process on its ``nth`` COMMIT (or ``on``)."""

    def __init__(self, conn, commits: list[int], nth: int, on: str = "COMMIT") -> None:
        self._conn, self._commits, self._nth, self._on = conn, commits, nth, on

    def execute(self, sql, *args, **kwargs):
        if sql == self._on:
            self._commits.append(1)
            if len(self._commits) == self._nth:
                signal.raise_signal(signal.SIGINT)
        return self._conn.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class HookedStore(PostgresStore):
    nth = 0
    on = "COMMIT"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commits: list[int] = []

    @property
    def connection(self):
        return Hooked(PostgresStore.connection.fget(self), self.commits, self.nth, self.on)




def nth_commit_completing_first(dsn: str) -> int:
    """Which COMMIT of a run (on a store whose schema exists) completes task 'first'."""
    PostgresStore(dsn).runs()  # the schema is made and migrated first
    probe = HookedStore(dsn)
    probe.nth = -1
    seen: list[int] = []
    flow = Flow("probe")

    @flow.task
    def first():
        seen.append(len(probe.commits))  # the commits made before it returns
        return 1

    flow.run(store=probe, run_id="probe")
    probe.close()
    return seen[0] + 1


def test_ctrl_c_during_the_commit_of_a_completion_keeps_it_completed_on_postgres(pg_dsn):
    calls: list[str] = []
    flow = two_task_flow(calls, "faults-pg")
    nth = nth_commit_completing_first(pg_dsn)
    store = HookedStore(pg_dsn)
    store.nth = nth
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=store, run_id="r1")
    store.close()
    partial = info.value.flowdsl_result
    assert partial.status is RunStatus.CANCELLED
    assert partial.tasks["first"].status is TaskStatus.COMPLETED
    reader = PostgresStore(pg_dsn)
    assert reader.get_run("r1")["tasks"]["first"]["status"] == "completed"
    resumed = flow.run(store=reader, resume="r1")
    reader.close()
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["first", "second"]  # 'first' never ran again
    assert resumed.tasks["first"].reason == "restored from the run store"


class FullDisk(HookedStore):
    """Every COMMIT from the ``nth`` on fails as a full disk on the server would."""

    @property
    def connection(self):
        conn = PostgresStore.connection.fget(self)
        store = self

        class Failing(Hooked):
            def execute(self, sql, *args, **kwargs):
                if sql == "COMMIT":
                    store.commits.append(1)
                    if len(store.commits) >= store.nth:
                        raise psycopg.errors.DiskFull("could not extend file: No space left")
                return self._conn.execute(sql, *args, **kwargs)

        return Failing(conn, self.commits, self.nth)


def test_after_a_store_error_the_same_process_can_resume_the_run_on_postgres(pg_dsn):
    calls: list[str] = []
    flow = two_task_flow(calls, "faults-pg")
    store = FullDisk(pg_dsn)
    store.nth = nth_commit_completing_first(pg_dsn)  # nothing can be written from then on
    with pytest.raises(StoreError, match="No space left"):
        flow.run(store=store, run_id="d2")
    store.close()
    reader = PostgresStore(pg_dsn)
    assert reader.get_run("d2")["status"] == "running"
    # the server has room again: this very process (the owner on record) resumes it at once
    result = flow.run(store=reader, resume="d2")
    reader.close()
    assert result.status is RunStatus.SUCCEEDED
    assert calls == ["first", "first", "second"]


def test_ctrl_c_during_begin_leaves_no_transaction_and_the_store_stays_usable_on_postgres(
        pg_dsn):
    calls: list[str] = []
    flow = two_task_flow(calls, "faults-pg")
    PostgresStore(pg_dsn).runs()  # the schema exists
    store = HookedStore(pg_dsn)
    store.on, store.nth = "BEGIN", 2  # 'first' starting
    with pytest.raises(KeyboardInterrupt):
        flow.run(store=store, run_id="r3")
    store.nth = -1
    assert flow.run(store=store, run_id="r4").status is RunStatus.SUCCEEDED
    assert store.get_run("r3")["status"] == "cancelled"
    store.close()
    other = PostgresStore(pg_dsn)  # another connection can write: no lock left behind
    assert flow.run(store=other, resume="r3").status is RunStatus.SUCCEEDED
    other.close()
