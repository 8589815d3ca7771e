"""Issue 11, reliability 9: Ctrl-C at concurrency > 1 with sync handlers in flight that will
not return for a minute (Python cannot interrupt a thread). The run records them CANCELLED, in
the store too, and the process exits promptly: the abandoned threads never hold it. Checked in
a real process with a real SIGINT and a real SQLite file; the times it records stay sane."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from flowdsl.store import SqliteStore

SCRIPT = textwrap.dedent('''
    import json, signal, sys, time
    from pathlib import Path
    from flowdsl import Flow

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    store, log = sys.argv[1], Path(sys.argv[2])
    flow = Flow("hung")

    def hangs(name):
        def handler():
            with log.open("a") as f:
                f.write(name + "\\n")
            time.sleep(60)
        handler.__name__ = handler.__qualname__ = name
        return handler

    flow.task(hangs("first"))
    flow.task(hangs("second"))

    @flow.task
    def after(first, second):
        return "never"

    try:
        flow.run(store=store, run_id="r1", max_concurrency=int(sys.argv[3]))
    except KeyboardInterrupt as exc:
        result = exc.flowdsl_result
        print(json.dumps({t: [r.status.value, r.duration] for t, r in result.tasks.items()}),
              flush=True)
        raise
''')


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [2, 4])
def test_ctrl_c_with_hung_sync_handlers_in_flight_exits_promptly(tmp_path, concurrency):
    script, log, store = tmp_path / "hung.py", tmp_path / "log.txt", tmp_path / "runs.db"
    script.write_text(SCRIPT)
    log.touch()
    proc = subprocess.Popen([sys.executable, str(script), str(store), str(log), str(concurrency)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while sorted(log.read_text().split()) != ["first", "second"]:  # both in flight
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)  # the handlers sleep for 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    seen = json.loads(out)
    assert {t: status for t, (status, _) in seen.items()} == {
        "first": "cancelled", "second": "cancelled", "after": "cancelled"}
    # the hung tasks ran until the interrupt; the one after them never started
    assert seen["first"][1] > 0 and seen["second"][1] > 0, seen
    assert seen["after"][1] in (None, 0.0), seen

    record = SqliteStore(store, readonly=True).get_run("r1")
    assert record["status"] == "cancelled"
    for task_id in ("first", "second"):
        task = record["tasks"][task_id]
        assert task["status"] == "cancelled"
        assert task["reason"] == "run interrupted by KeyboardInterrupt"
    assert record["tasks"]["after"]["status"] == "cancelled"
    conn = sqlite3.connect(store)
    run_start, = conn.execute("SELECT started FROM runs").fetchone()
    rows = conn.execute("SELECT task_id, started, ended, duration FROM tasks").fetchall()
    conn.close()
    for task_id, started, ended, duration in rows:
        if started is None:
            assert duration in (None, 0.0), task_id
        else:  # (the duration is clamped at 0: "duration >= 0" could not fail)
            assert run_start <= started <= ended, task_id
            assert duration == pytest.approx(ended - started, abs=1e-6), task_id


HUNG_FLOW = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from flowdsl import Flow

    flow = Flow("hung")

    def hangs(name):
        def handler(quick):
            with open(Path(__file__).with_name("log.txt"), "a") as f:
                f.write(name + "\\n")
            time.sleep(60)
        handler.__name__ = handler.__qualname__ = name
        return handler

    @flow.task
    def quick():
        return 1

    flow.task(hangs("first"))
    flow.task(hangs("second"))

    @flow.task
    def after(first, second):
        return "never"
''')


@pytest.mark.slow
def test_ctrl_c_on_the_cli_at_concurrency_2_exits_promptly_with_a_sane_table(tmp_path):
    from tests.test_cli import COMMAND, environment

    (tmp_path / "hung.py").write_text(HUNG_FLOW)
    log = tmp_path / "log.txt"
    log.touch()
    proc = subprocess.Popen([*COMMAND, "run", "hung.py", "--concurrency", "2", "--run-id", "c1"],
                            cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while sorted(log.read_text().split()) != ["first", "second"]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)  # the handlers sleep for 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 1, err  # DESIGN: 1 when the run was cancelled
    assert "Traceback" not in err
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in ("quick", "first", "second", "after")}
    assert "completed" in rows["quick"]
    for task_id in ("first", "second", "after"):
        assert "cancelled" in rows[task_id] and "run interrupted by KeyboardInterrupt" in \
            rows[task_id], rows[task_id]
    assert not re.search(r"\s-\d", out), out  # no negative duration anywhere
