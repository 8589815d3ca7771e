"""The run store under faults a user meets: Ctrl-C during a transaction, a run owned by a
process of another host, a store that failed mid-run, malformed content and odd paths.

Ctrl-C is a real SIGINT (``signal.raise_signal``) sent from inside the store's own SQL calls
at the exact moment under test, through a connection that forwards everything to SQLite."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowdsl import Flow, ResumeError, RunStatus, StoreError, TaskStatus
from flowdsl.store import SqliteStore


COMMITS = "commits"
"""What a hook is given for a statement that commits: ``COMMIT``, or a writing statement run
outside a transaction (SQLite's autocommit, which the journal uses for one-statement writes)."""


class Hooked:
    """A connection (or cursor) that calls ``hook(when, sql)`` before and after each statement;
    ``sql`` is `COMMITS` for a statement that commits."""

    def __init__(self, conn: sqlite3.Connection | sqlite3.Cursor, hook) -> None:
        self._conn, self._hook = conn, hook

    def execute(self, sql, *args):
        connection = self._conn if isinstance(self._conn, sqlite3.Connection) \
            else self._conn.connection
        commits = sql.startswith("COMMIT") or (
            not connection.in_transaction and sql.split()[0] in ("INSERT", "UPDATE", "DELETE"))
        label = COMMITS if commits else sql
        self._hook("before", label)
        cursor = self._conn.execute(sql, *args)
        self._hook("after", label)
        return cursor

    def cursor(self):
        return Hooked(self._conn.cursor(), self._hook)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class HookedStore(SqliteStore):
    hook = staticmethod(lambda when, sql: None)

    @property
    def connection(self):
        return Hooked(SqliteStore.connection.fget(self), self.hook)


def two_task_flow(calls: list[str], name: str = "faults") -> Flow:
    """first -> second, each noting its call in ``calls``."""
    flow = Flow(name)

    @flow.task
    def first():
        calls.append("first")
        return 1

    @flow.task
    def second(first):
        calls.append("second")
        return first + 1

    return flow


def sigint_once_at(when: str, statement: str, nth: int = 1):
    """A hook that sends SIGINT to this process at the ``nth`` ``statement``."""
    seen = []

    def hook(moment, sql):
        if moment == when and sql.startswith(statement):
            seen.append(sql)
            if len(seen) == nth:
                signal.raise_signal(signal.SIGINT)

    return hook


def row(path: Path, run_id: str, task_id: str) -> str | None:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute("SELECT status FROM tasks WHERE run_id = ? AND task_id = ?",
                             (run_id, task_id)).fetchone()
    finally:
        conn.close()
    return None if found is None else found[0]


# -- Ctrl-C and transactions -------------------------------------------------------------------

def test_ctrl_c_during_the_commit_of_a_completion_keeps_it_completed(tmp_path):
    path = tmp_path / "runs.db"
    calls: list[str] = []
    flow = two_task_flow(calls)
    store = HookedStore(path)
    # commits: the run's opening, 'first' started, 'first' completed
    store.hook = sigint_once_at("before", COMMITS, nth=3)
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=store, run_id="r1")
    store.close()
    partial = info.value.flowdsl_result
    assert partial.status is RunStatus.CANCELLED
    assert partial.tasks["first"].status is TaskStatus.COMPLETED
    assert row(path, "r1", "first") == "completed"
    resumed = flow.run(store=path, resume="r1")
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["first", "second"]  # 'first' never ran again
    assert resumed.tasks["first"].reason == "restored from the run store"


def test_an_interrupt_raised_once_commit_is_done_is_not_taken_for_a_failed_write(tmp_path):
    """Outside the main thread no signal can be held: whether COMMIT happened is read from
    the connection, so a completion committed just before the interrupt stays completed."""
    path = tmp_path / "runs.db"
    calls: list[str] = []
    flow = two_task_flow(calls)
    seen = []

    def hook(moment, sql):
        if moment == "after" and sql == COMMITS:
            seen.append(sql)
            if len(seen) == 3:  # 'first' completed
                raise KeyboardInterrupt

    store = HookedStore(path)
    store.hook = hook
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=store, run_id="r2")
    store.close()
    assert info.value.flowdsl_result.tasks["first"].status is TaskStatus.COMPLETED
    assert row(path, "r2", "first") == "completed"
    flow.run(store=path, resume="r2")
    assert calls == ["first", "second"]


@pytest.mark.parametrize(("when", "statement"), [("after", "BEGIN IMMEDIATE"),
                                                ("before", COMMITS)],
                         ids=["after-begin", "in-a-one-statement-write"])
def test_ctrl_c_during_a_write_leaves_no_transaction_and_the_store_stays_usable(
        tmp_path, when, statement):
    path = tmp_path / "runs.db"
    flow = Flow("faults")
    failed: list[int] = []

    @flow.task(retries=1, retry_wait=0)
    def first():
        if not failed:
            failed.append(1)
            raise OSError("once")
        return 1

    store = HookedStore(path, busy_timeout=0.0)
    # the second BEGIN: the failed attempt of 'first' (a write of two statements); the second
    # commit: 'first' starting (a one-statement write)
    store.hook = sigint_once_at(when, statement, nth=2)
    with pytest.raises(KeyboardInterrupt):
        flow.run(store=store, run_id="r3")
    assert not SqliteStore.connection.fget(store).in_transaction
    # another process can write the file (no write lock left behind) ...
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    # ... and the same store object runs the next run
    store.hook = lambda when, sql: None
    assert flow.run(store=store, run_id="r4").status is RunStatus.SUCCEEDED
    assert store.get_run("r3")["status"] == "cancelled"
    store.close()


def test_a_cancel_never_overwrites_a_completed_row(tmp_path):
    path = tmp_path / "runs.db"
    flow = two_task_flow([])
    flow.run(store=path, run_id="r5")
    store = SqliteStore(path)
    journal = store.open_run(flow.compile(), flow="faults", serializer="json", run_id="r6",
                             inputs={}, resume=None, force=False, check_inputs=lambda g: None)
    first = flow.run(store=path, run_id="r7").tasks["first"]
    journal.task_started(first)
    journal.task_completed(first, 1, {})
    first.status, first.reason = TaskStatus.CANCELLED, "run interrupted by KeyboardInterrupt"
    journal.run_finished(RunStatus.CANCELLED, [first])
    assert row(path, "r6", "first") == "completed"
    store.close()


# -- ownership --------------------------------------------------------------------------------

def test_run_owned_on_another_host_names_it_and_force_takes_it_over(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("hosts")
    flow.task(lambda: 1, id="one")
    flow.run(store=path, run_id="h1")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET status = 'running', owner_host = 'old-container', "
                 "owner_pid = 4242, owner_start = '1' WHERE run_id = 'h1'")
    conn.execute("UPDATE tasks SET status = 'running' WHERE run_id = 'h1'")
    conn.commit()
    conn.close()
    with pytest.raises(ResumeError, match=r"4242.*'old-container'.*force=True"):
        flow.run(store=path, resume="h1")
    result = flow.run(store=path, resume="h1", force=True)
    assert result.status is RunStatus.SUCCEEDED
    assert SqliteStore(path, readonly=True).get_run("h1")["status"] == "succeeded"


def full_disk_after(n_commits: int, *, forever: bool):
    """A hook that fails the commits after the first ``n_commits`` as a full disk would."""
    seen = []

    def hook(moment, sql):
        if moment == "before" and sql == COMMITS:
            seen.append(sql)
            if len(seen) > n_commits and (forever or len(seen) == n_commits + 1):
                raise sqlite3.OperationalError("database or disk is full")

    return hook


def test_a_store_error_marks_the_run_failed_when_the_store_can_still_be_written(tmp_path):
    path = tmp_path / "runs.db"
    flow = two_task_flow([])
    store = HookedStore(path)
    store.hook = full_disk_after(2, forever=False)  # the completion of 'first' fails once
    with pytest.raises(StoreError, match="disk is full"):
        flow.run(store=store, run_id="d1")
    store.close()
    record = SqliteStore(path, readonly=True).get_run("d1")
    assert record["status"] == "failed"
    assert record["tasks"]["first"]["status"] != "completed"


def test_after_a_store_error_the_same_process_can_resume_the_run(tmp_path):
    path = tmp_path / "runs.db"
    calls: list[str] = []
    flow = two_task_flow(calls)
    store = HookedStore(path)
    store.hook = full_disk_after(2, forever=True)  # nothing can be written any more
    with pytest.raises(StoreError):
        flow.run(store=store, run_id="d2")
    store.close()
    assert SqliteStore(path, readonly=True).get_run("d2")["status"] == "running"
    # the disk has room again: this very process (the owner on record) resumes it
    result = flow.run(store=path, resume="d2")
    assert result.status is RunStatus.SUCCEEDED
    assert calls == ["first", "first", "second"]


# -- malformed content and odd paths ----------------------------------------------------------

def test_malformed_fingerprints_are_a_store_error_naming_the_run(tmp_path):
    path = tmp_path / "runs.db"
    flow = two_task_flow([])
    flow.run(store=path, run_id="m1")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET status = 'failed', fingerprints = '{not json' "
                 "WHERE run_id = 'm1'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"run 'm1'.*fingerprints"):
        flow.run(store=path, resume="m1")


@pytest.mark.parametrize("targets", ["{not json", "[1, 2]", '"first"'])
def test_malformed_targets_are_a_store_error_naming_the_run(tmp_path, targets):
    path = tmp_path / "runs.db"
    flow = two_task_flow([])
    flow.run(store=path, run_id="m2", targets=["first"])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET status = 'failed', targets = ? WHERE run_id = 'm2'",
                 (targets,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"run 'm2'.*malformed targets"):
        flow.run(store=path, resume="m2")
    with pytest.raises(StoreError, match=r"run 'm2'.*malformed targets"):
        flow.run(store=path, resume="m2", targets=["first"])


def test_an_empty_file_is_refused_not_silently_made_a_store(tmp_path):
    path = tmp_path / "runs.db"
    path.touch()
    with pytest.raises(StoreError, match=rf"{path}.*empty file"):
        two_task_flow([]).run(store=path)
    assert path.stat().st_size == 0
    with pytest.raises(StoreError, match="empty file"):
        SqliteStore(path, readonly=True).runs()


def test_another_applications_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=rf"{path}.*not a flowdsl run store.*customers"):
        two_task_flow([]).run(store=path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"customers"}


@pytest.mark.parametrize("odd", ["parent-is-a-file", "path-is-a-directory"])
def test_odd_store_paths_are_store_errors_naming_the_path(tmp_path, odd):
    if odd == "parent-is-a-file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "runs.db"
    else:
        path = tmp_path / "folder"
        path.mkdir()
    with pytest.raises(StoreError, match=str(path)):
        two_task_flow([]).run(store=path)


def test_a_new_store_leaves_no_side_files_behind(tmp_path):
    two_task_flow([]).run(store=tmp_path / "runs.db")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("runs.db")) == []


def test_two_stores_created_at_once_agree_on_one_file(tmp_path):
    path = tmp_path / "runs.db"
    one, two = SqliteStore(path), SqliteStore(path)
    one._create()
    two._create()  # lost the race: uses the first one's file
    assert one.runs() == two.runs() == []
    one.close()
    two.close()


def read_only_command(folder: Path, argv: list[str]) -> list[str] | None:
    """``argv`` run where ``folder`` is a read-only file system (a read-only bind mount in a
    mount namespace of its own: permissions alone do not stop root), or None if impossible."""
    wrap = ["unshare", "-m", "sh", "-c",
            'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', str(folder)]
    probe = subprocess.run(wrap + ["sh", "-c", f"! touch {folder}/probe"], capture_output=True)
    if probe.returncode != 0:
        return None
    return wrap + argv


def test_a_store_in_a_read_only_directory_can_be_listed_and_shown(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "runs.db"
    two_task_flow([]).run(store=path, run_id="ro-1")
    assert not Path(f"{path}-wal").exists()  # a cleanly closed store is one file
    script = textwrap.dedent(f"""
        from flowdsl.store import SqliteStore
        store = SqliteStore({str(path)!r}, readonly=True)
        print([r["run_id"] for r in store.runs()], store.get_run("ro-1")["status"])
    """)
    command = read_only_command(folder, [sys.executable, "-c", script])
    if command is None:
        pytest.skip("cannot make a read-only mount here (needs unshare and mount)")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ro-1'] succeeded"
    assert sorted(p.name for p in folder.iterdir()) == ["runs.db"]


def test_a_read_only_store_refuses_to_record_a_run(tmp_path):
    path = tmp_path / "runs.db"
    two_task_flow([]).run(store=path)
    with pytest.raises(StoreError, match="read-only"):
        two_task_flow([]).run(store=SqliteStore(path, readonly=True))


def test_text_that_is_not_utf8_in_the_store_is_a_store_error(tmp_path):
    path = tmp_path / "runs.db"
    flow = two_task_flow([])
    flow.run(store=path, run_id="u1")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tasks SET error = CAST(x'fffe41' AS TEXT) WHERE task_id = 'first'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=str(path)):
        SqliteStore(path, readonly=True).get_run("u1")


def test_a_path_with_a_nul_byte_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="NUL|null"):
        two_task_flow([]).run(store=str(tmp_path / "a\x00b.db"))
