"""What a newcomer meets on the command line (issue 11): a misspelt --set key, optional
inputs in `flowdsl plan`, error texts that name the file, `flowdsl show` in plan order with
every reason, no trailing spaces, planted control sequences shown escaped, the summary's
overhead without the store, a TARGET using relative imports, malformed stores, and
timestamps that never precede the run's start. Real subprocesses, real store files."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from flowdsl import Flow, RunStatus, TaskStatus
from flowdsl.store import SqliteStore

from tests.test_cli import DATA_PROCESSING, flowdsl, one_line_error, write

TOP_N = '''
    from flowdsl import Flow

    flow = Flow("ranking")

    @flow.task
    def rank(top_n=3, *, scores=(5, 9, 1, 7)):
        return sorted(scores, reverse=True)[:top_n]
'''


def test_set_with_a_key_no_task_reads_warns_with_did_you_mean_and_still_runs(tmp_path):
    target = write(tmp_path / "ranking.py", TOP_N)
    proc = flowdsl(tmp_path, "run", target, "--set", "top_nn=5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "input 'top_nn'" in proc.stderr and "did you mean 'top_n'?" in proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"
    quiet = flowdsl(tmp_path, "run", target, "--set", "top_n=2")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_plan_lists_optional_inputs_with_their_defaults(tmp_path):
    proc = flowdsl(tmp_path, "plan", DATA_PROCESSING)
    assert proc.returncode == 0, proc.stderr
    assert "required inputs: none" in proc.stdout
    assert re.search(r"optional inputs.*\n\s+data_source \(load default 'default\.csv'\)",
                     proc.stdout), proc.stdout


MISSING_FILE = '''
    from flowdsl import Flow

    flow = Flow("files")

    @flow.task
    def first():
        return 1

    @flow.task
    def read(first):
        open("no-such-input.csv")

    @flow.task(depends_on=["read"])
    def after():
        return 2

    @flow.task
    def alone():
        return 3
'''


def test_error_text_names_the_file_and_show_lists_plan_order_with_every_reason(tmp_path):
    target = write(tmp_path / "files.py", MISSING_FILE)
    ran = flowdsl(tmp_path, "run", target, "--run-id", "f1", "--log-level", "INFO")
    assert ran.returncode == 1
    text = "FileNotFoundError: [Errno 2] No such file or directory: 'no-such-input.csv'"
    assert text in ran.stdout and text in ran.stderr  # the table and the log line
    shown = flowdsl(tmp_path, "show", "f1")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split()[0] for line in shown.stdout.splitlines()
            if re.match(r"^\s*(first|read|after|alone)\s+\w+", line)]
    assert rows == ["first", "read", "after", "alone"], shown.stdout
    assert re.search(r"after\s+skipped\s+0\s+-\s+upstream task 'read' failed", shown.stdout)
    for output in (ran.stdout, shown.stdout, flowdsl(tmp_path, "runs").stdout):
        assert not [line for line in output.splitlines() if line != line.rstrip()], output


def test_planted_control_sequences_are_shown_escaped(tmp_path):
    target = write(tmp_path / "files.py", MISSING_FILE)
    flowdsl(tmp_path, "run", target, "--run-id", "evil")
    conn = sqlite3.connect(tmp_path / ".flowdsl" / "runs.db")
    conn.execute("UPDATE tasks SET error = ?, traceback = ? WHERE task_id = 'read'",
                 ("\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07boom", "tb\x1b[2J\r\n"))
    conn.execute("UPDATE runs SET flow = ? WHERE run_id = 'evil'", ("fl\x1b[31mow",))
    conn.commit()
    conn.close()
    for args in (("show", "evil"), ("runs",)):
        proc = flowdsl(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\r" not in proc.stdout
        assert "\\x1b" in proc.stdout


def test_summary_shows_overhead_without_the_store_and_the_store_per_task(tmp_path):
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"overhead ([\d.]+) (µs|ms|s) per task without the store, "
                      r"store ([\d.]+) (µs|ms|s) per task", proc.stdout)
    assert found, proc.stdout
    scale = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}
    assert float(found[3]) * scale[found[4]] > 0


def test_relative_imports_in_a_target_file_suggest_the_module_form(tmp_path):
    package = tmp_path / "pipes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package / "helpers.py", "def one():\n    return 1\n")
    write(package / "main.py", '''
        from flowdsl import Flow
        from .helpers import one

        flow = Flow("pipes")
        flow.task(one, id="one")
    ''')
    proc = flowdsl(tmp_path, "run", "pipes/main.py")
    assert proc.returncode == 2
    assert "flowdsl run pipes.main" in one_line_error(proc)
    assert flowdsl(tmp_path, "run", "pipes.main").returncode == 0


@pytest.mark.parametrize("command", [("runs",), ("show", "x")])
def test_a_foreign_database_or_an_empty_file_is_a_one_line_store_error(tmp_path, command):
    foreign = tmp_path / "app.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    for path, says in ((foreign, "invoices"), (empty, "empty file")):
        proc = flowdsl(tmp_path, *command, "--store", path)
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert str(path) in line and says in line and "StoreError" in line
    ran = flowdsl(tmp_path, "run", DATA_PROCESSING, "--store", foreign)
    assert ran.returncode == 1 and "invoices" in one_line_error(ran)


def test_odd_store_path_is_a_one_line_error(tmp_path):
    (tmp_path / "plain").write_text("x")
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING, "--store", "plain/runs.db")
    assert proc.returncode == 1
    assert "plain/runs.db" in one_line_error(proc)


@pytest.mark.parametrize("column, text", [("targets", "{not json"), ("plan_order", "[1")])
def test_malformed_run_columns_are_one_line_store_errors(tmp_path, column, text):
    target = write(tmp_path / "files.py", MISSING_FILE)
    flowdsl(tmp_path, "run", target, "--run-id", "bad", "--target", "read")
    conn = sqlite3.connect(tmp_path / ".flowdsl" / "runs.db")
    conn.execute(f"UPDATE runs SET {column} = ?", (text,))
    conn.commit()
    conn.close()
    for args in [("run", target, "--resume", "bad") if column == "targets" else ("show", "bad")]:
        proc = flowdsl(tmp_path, *args)
        assert proc.returncode == 1, (args, proc.stderr)
        line = one_line_error(proc)
        assert "StoreError" in line and "run 'bad'" in line and "malformed" in line, line


# -- times ------------------------------------------------------------------------------------

def test_task_times_never_precede_the_run_start_nor_go_negative(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("times")
    called = {}

    @flow.task
    def a():
        called["a"] = time.time()
        return 1

    @flow.task
    def b(a):
        called["b"] = time.time()
        return a + 1

    result = flow.run(store=path, run_id="t1")
    assert result.status is RunStatus.SUCCEEDED
    slack = 2e-4  # two clocks (perf_counter for durations, time.time for stamps) are mixed
    for task_id, when in called.items():  # the task started before its handler was called
        task = result.tasks[task_id]
        assert task.started_at - slack <= when <= task.ended_at + slack, (task_id, when, task)
    conn = sqlite3.connect(path)
    run_start = conn.execute("SELECT started FROM runs WHERE run_id = 't1'").fetchone()[0]
    stored = conn.execute("SELECT task_id, started, ended, duration FROM tasks").fetchall()
    conn.close()
    for task_id, started, ended, duration in stored:
        assert run_start <= started <= ended, task_id
        assert duration == pytest.approx(ended - started, abs=1e-6), task_id
    for task in result.tasks.values():
        assert task.started_at >= run_start and task.ended_at >= task.started_at


def test_a_task_cancelled_in_flight_has_no_negative_duration_in_the_store(tmp_path):
    path = tmp_path / "runs.db"
    flow = Flow("cancelled")

    @flow.task
    def quick():
        return 1

    @flow.task
    def interrupted(quick):
        raise KeyboardInterrupt  # at once: a start time in the future shows as negative

    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=path, run_id="c1")
    task = info.value.flowdsl_result.tasks["interrupted"]
    assert task.status is TaskStatus.CANCELLED
    # (the duration is clamped at 0: what shows a start in the future is the order of times)
    assert task.started_at <= task.ended_at
    assert task.duration == pytest.approx(task.ended_at - task.started_at, abs=1e-6)
    conn = sqlite3.connect(path)
    run_start, = conn.execute("SELECT started FROM runs").fetchone()
    started, ended, duration = conn.execute(
        "SELECT started, ended, duration FROM tasks WHERE task_id = 'interrupted'").fetchone()
    conn.close()
    assert run_start <= started <= ended
    assert duration == pytest.approx(ended - started, abs=1e-6)
    record = SqliteStore(path, readonly=True).get_run("c1")
    assert record["tasks"]["interrupted"]["reason"] == "run interrupted by KeyboardInterrupt"


# -- Dask --------------------------------------------------------------------------------------

def test_an_unpicklable_handler_on_dask_leaves_no_run_in_the_store(tmp_path):
    pytest.importorskip("distributed")
    import threading

    from flowdsl import DefinitionError
    from flowdsl.executors.dask import DaskExecutor

    lock = threading.Lock()
    flow = Flow("unpicklable")

    @flow.task
    def guarded():
        with lock:
            return 1

    path = tmp_path / "runs.db"
    # never connected: the check comes before the executor is used and before the store
    with pytest.raises(DefinitionError, match="guarded"):
        flow.run(store=path, executor=DaskExecutor("tcp://127.0.0.1:9"))
    assert not path.exists() or SqliteStore(path, readonly=True).runs() == []
