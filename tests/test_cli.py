"""The `flowdsl` command, run as users run it: the installed console script, in a real
subprocess, in a fresh directory, on the examples and on small flow files written here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_PROCESSING = ROOT / "examples" / "data_processing.py"
PRACTICE_25 = ROOT / "examples" / "practice_25_tasks.py"
PRACTICE_INPUTS = {
    "orders_source": "s3://shop/orders.parquet", "customers_source": "crm.customers",
    "catalog_version": "v7", "seed": 42, "n_orders": 300, "as_of_day": 90,
    "test_share": 0.3, "report_title": "Weekly customer value",
}
_SCRIPT = shutil.which("flowdsl")
COMMAND = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "flowdsl"]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLOWDSL_STORE", "COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE",
                        "TTY_INTERACTIVE")}
    env.update(extra)
    return env


def flowdsl(cwd: Path, *args: object, env: dict[str, str] | None = None,
            command: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``flowdsl ARGS`` in ``cwd``; stdout and stderr captured (so not a terminal)."""
    return subprocess.run(
        [*(command or COMMAND), *map(str, args)], cwd=cwd, env=env or environment(),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error a command printed: exactly one line on stderr, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


RESUMABLE = '''
    """first -> second -> flaky -> last; flaky fails until the file `marker` exists.
    Each task appends its id to side_effects.txt when it runs."""
    from pathlib import Path

    from flowdsl import Flow

    HERE = Path(__file__).parent
    flow = Flow("resumable")


    def ran(task):
        with open(HERE / "side_effects.txt", "a") as log:
            log.write(task + "\\n")


    @flow.task
    def first():
        ran("first")
        return 1


    @flow.task
    def second(first):
        ran("second")
        return first + 1


    @flow.task
    def flaky(second):
        ran("flaky")
        if not (HERE / "marker").exists():
            raise RuntimeError("no marker file yet")
        return second * 10


    @flow.task
    def last(flaky):
        ran("last")
        return flaky + 1
'''

FAILING = '''
    from flowdsl import Flow

    flow = Flow("failing")


    @flow.task
    def fine():
        return "fine"


    @flow.task
    def broken(fine):
        raise ValueError("broken on purpose [with brackets]")


    @flow.task
    def downstream(broken):
        return "never"
'''

INPUTS = '''
    from flowdsl import Flow

    flow = Flow("inputs")


    @flow.task
    def describe(number, flag, items, text, quoted):
        kinds = [type(v).__name__ for v in (number, flag, items, text, quoted)]
        return {"kinds": kinds, "values": [number, flag, items, text, quoted]}
'''


@pytest.fixture
def resumable(tmp_path: Path) -> Path:
    return write(tmp_path / "resumable_flow.py", RESUMABLE)


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    return write(tmp_path / "failing_flow.py", FAILING)


# -- exit code 0 --------------------------------------------------------------------------------
def test_run_example_succeeds_into_default_store(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING)
    assert proc.returncode == 0, proc.stderr
    for task in ("load", "validate", "transform", "analyze", "report"):
        assert re.search(rf"^\s*{task}\s+completed\s+1\b", proc.stdout, re.M), proc.stdout
    assert "succeeded: 5/5 tasks succeeded, 0 failed" in proc.stdout
    assert "overhead" in proc.stdout
    assert (tmp_path / ".flowdsl" / "runs.db").is_file()


def test_practice_25_with_input_file_and_json(tmp_path: Path) -> None:
    (tmp_path / "inputs.json").write_text(json.dumps(PRACTICE_INPUTS))
    proc = flowdsl(tmp_path, "run", f"{PRACTICE_25}:flow", "--input", "inputs.json", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "succeeded"
    assert len(record["tasks"]) == 25
    assert all(task["status"] == "completed" for task in record["tasks"].values())
    assert record["summary"]["total_tasks"] == 25
    assert record["summary"]["successful_tasks"] == 25
    assert record["inputs"]["seed"] == 42


def test_python_dash_m_flowdsl(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING, "--quiet", "--store", "other.db",
                   command=[sys.executable, "-m", "flowdsl"])
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout
    assert "validate" not in proc.stdout  # --quiet: no task table
    assert (tmp_path / "other.db").is_file()


def test_store_from_environment(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "dir" / "runs.db"
    env = environment(FLOWDSL_STORE=str(store))
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING, env=env)
    assert proc.returncode == 0, proc.stderr
    assert store.is_file()
    assert not (tmp_path / ".flowdsl").exists()
    listed = flowdsl(tmp_path, "runs", env=env)
    assert listed.returncode == 0 and "data_processing" in listed.stdout


# -- exit code 1 --------------------------------------------------------------------------------
def test_failing_flow_exits_1_and_shows_the_error(tmp_path: Path, failing: Path) -> None:
    proc = flowdsl(tmp_path, "run", failing)
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"^\s*fine\s+completed", proc.stdout, re.M)
    assert re.search(r"^\s*broken\s+failed", proc.stdout, re.M)
    assert re.search(r"^\s*downstream\s+skipped", proc.stdout, re.M)
    assert "ValueError: broken on purpose [with brackets]" in proc.stdout
    assert "--resume" in proc.stdout  # how to continue it
    assert "broken" in proc.stderr  # loguru's ERROR line (default level WARNING)


def test_failing_flow_json_still_exits_1(tmp_path: Path, failing: Path) -> None:
    proc = flowdsl(tmp_path, "run", failing, "--json")
    assert proc.returncode == 1, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "failed"
    assert record["tasks"]["broken"]["status"] == "failed"
    assert "broken on purpose" in record["tasks"]["broken"]["error"]
    assert record["summary"]["failed_tasks"] == 1
    assert record["summary"]["skipped_tasks"] == 1


def test_store_failure_exits_1(tmp_path: Path) -> None:
    (tmp_path / "broken.db").write_text("this is not an SQLite database, not at all\n" * 20)
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING, "--store", "broken.db")
    assert proc.returncode == 1
    assert "StoreError" in one_line_error(proc)


# -- exit code 2 --------------------------------------------------------------------------------
@pytest.mark.parametrize("target, says", [
    ("no_such_file.py", "no such file"),
    ("no_such_module_xyz", "cannot find module"),
    ("json", "holds no flowdsl Flow"),
    (f"{DATA_PROCESSING}:flwo", "did you mean 'flow'"),
    (f"{DATA_PROCESSING}:FLOW_NAME", "not a flowdsl Flow"),
])
def test_bad_target_exits_2(tmp_path: Path, target: str, says: str) -> None:
    proc = flowdsl(tmp_path, "run", target)
    assert proc.returncode == 2
    assert says in one_line_error(proc)
    assert not (tmp_path / ".flowdsl").exists()  # nothing ran, no store made


def test_target_that_fails_to_import_exits_2(tmp_path: Path) -> None:
    write(tmp_path / "raises_on_import.py", "raise ImportError('needs a missing package')\n")
    proc = flowdsl(tmp_path, "plan", "raises_on_import.py")
    assert proc.returncode == 2
    assert "needs a missing package" in one_line_error(proc)


def test_bad_set_exits_2(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "run", DATA_PROCESSING, "--set", "no_equals_sign")
    assert proc.returncode == 2
    assert "--set 'no_equals_sign'" in one_line_error(proc)


def test_missing_input_exits_2_naming_it(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "run", PRACTICE_25)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "missing input" in line and "'orders_source'" in line and "--set" in line


def test_definition_error_exits_2_with_traceback_only_at_debug(tmp_path: Path) -> None:
    write(tmp_path / "cyclic_flow.py", """
        from flowdsl import Flow

        flow = Flow("cyclic")


        @flow.task(depends_on=["b"])
        def a():
            pass


        @flow.task(depends_on=["a"])
        def b():
            pass
    """)
    proc = flowdsl(tmp_path, "run", "cyclic_flow.py")
    assert proc.returncode == 2
    assert "CycleError" in one_line_error(proc)
    debug = flowdsl(tmp_path, "run", "cyclic_flow.py", "--log-level", "DEBUG")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and "CycleError" in debug.stderr
    plan = flowdsl(tmp_path, "plan", "cyclic_flow.py")
    assert plan.returncode == 2 and "cycle" in one_line_error(plan)


def test_refused_resume_exits_2(tmp_path: Path, resumable: Path) -> None:
    (tmp_path / "marker").touch()
    first = flowdsl(tmp_path, "run", resumable, "--run-id", "nightly-1")
    assert first.returncode == 0, first.stderr
    again = flowdsl(tmp_path, "run", resumable, "--run-id", "nightly-1")
    assert again.returncode == 2
    line = one_line_error(again)
    assert "ResumeError" in line and "resume" in line
    side_effects = (tmp_path / "side_effects.txt").read_text().split()
    assert side_effects == ["first", "second", "flaky", "last"]  # the refused run ran nothing


def test_resume_of_a_changed_flow_needs_force(tmp_path: Path, resumable: Path) -> None:
    failed = flowdsl(tmp_path, "run", resumable, "--run-id", "r1")
    assert failed.returncode == 1
    # a task that completed changed (fixing the failed one alone needs no --force)
    resumable.write_text(resumable.read_text().replace("first + 1", "first + 2"))
    (tmp_path / "marker").touch()
    refused = flowdsl(tmp_path, "run", resumable, "--resume", "r1")
    assert refused.returncode == 2
    line = one_line_error(refused)
    assert "second" in line and "flaky" not in line  # names what changed
    assert "--force" in line and "force=True" not in line  # in the CLI's words
    forced = flowdsl(tmp_path, "run", resumable, "--resume", "r1", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["tasks"]["last"]["result"] == 31


# -- the README's story: a failed run, resumed --------------------------------------------------
def test_failed_run_resumed_runs_only_what_did_not_complete(tmp_path: Path,
                                                            resumable: Path) -> None:
    failed = flowdsl(tmp_path, "run", resumable)
    assert failed.returncode == 1
    hint = re.search(r"flowdsl run (\S+) --resume (\S+)", failed.stdout)
    assert hint, failed.stdout
    run_id = hint.group(2)
    assert hint.group(1) == f"{resumable}:flow"
    assert (tmp_path / "side_effects.txt").read_text().split() == ["first", "second", "flaky"]

    (tmp_path / "marker").touch()
    resumed = flowdsl(tmp_path, "run", resumable, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert run_id in resumed.stdout
    assert "restored" in resumed.stdout
    # first and second were not run again; flaky ran a second time, last once
    assert (tmp_path / "side_effects.txt").read_text().split() == [
        "first", "second", "flaky", "flaky", "last"]

    shown = flowdsl(tmp_path, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "succeeded"
    assert len(record["sessions"]) == 2  # its history shows both attempts
    assert record["tasks"]["last"]["result"] == 21


# -- plan, graph, runs, show, bench ------------------------------------------------------------
def test_plan_lists_steps_in_order_and_inputs(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "plan", PRACTICE_25)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s*1\s+ingest_\w+\s+\d", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\s*25\s+publish_report\s+4 LOW", proc.stdout, re.M), proc.stdout
    assert "inputs:" in proc.stdout
    for key in PRACTICE_INPUTS:
        assert re.search(rf"^\s+{key} \(read by ", proc.stdout, re.M), key
    small = flowdsl(tmp_path, "plan", DATA_PROCESSING)
    assert re.search(r"^\s*3\s+transform\s+2 HIGH\s+load, validate\s+-\s+clean_records\s+0",
                     small.stdout, re.M), small.stdout


def test_graph_mermaid_and_dot(tmp_path: Path) -> None:
    mermaid = flowdsl(tmp_path, "graph", DATA_PROCESSING)
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert any("validate" in line and "priority 1" in line for line in lines)
    assert "    load --> validate" in lines and "    analyze --> report" in lines
    assert sum("-->" in line for line in lines) == 6

    dot = flowdsl(tmp_path, "graph", DATA_PROCESSING, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.startswith('digraph "data_processing" {')
    assert dot.stdout.rstrip().endswith("}")
    assert '"load" -> "validate";' in dot.stdout
    assert re.search(r'"transform" \[label="transform\\npriority 2', dot.stdout)
    assert dot.stdout.count("->") == 6


@pytest.mark.slow
def test_runs_and_show(tmp_path: Path, failing: Path) -> None:
    assert flowdsl(tmp_path, "run", DATA_PROCESSING, "--run-id", "ok-run").returncode == 0
    assert flowdsl(tmp_path, "run", failing, "--run-id", "bad-run").returncode == 1

    listed = flowdsl(tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index("bad-run") < listed.stdout.index("ok-run")  # newest first
    assert re.search(r"bad-run\s+failing\s+failed", listed.stdout)
    assert re.search(r"ok-run\s+data_processing\s+succeeded", listed.stdout)
    limited = flowdsl(tmp_path, "runs", "--limit", "1", "--json")
    assert [run["run_id"] for run in json.loads(limited.stdout)] == ["bad-run"]

    shown = flowdsl(tmp_path, "show", "bad-run")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^\s*broken\s+failed", shown.stdout, re.M)
    assert "task 'broken' failed: ValueError: broken on purpose [with brackets]" in shown.stdout
    assert "Traceback" in shown.stdout and 'raise ValueError("broken on purpose' in shown.stdout

    unknown = flowdsl(tmp_path, "show", "no-such-run")
    assert unknown.returncode == 2 and "no-such-run" in one_line_error(unknown)


def test_runs_without_a_store(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "runs")
    assert proc.returncode == 0 and "no runs" in proc.stdout
    assert not (tmp_path / ".flowdsl").exists()


def test_bench_reports_overhead_per_task(tmp_path: Path) -> None:
    proc = flowdsl(tmp_path, "bench", DATA_PROCESSING, "--repeat", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 runs, 5 tasks" in proc.stdout
    row = re.search(r"overhead per task \(µs\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", proc.stdout)
    assert row, proc.stdout
    median, low, high = map(float, row.groups())
    assert 0 < low <= median <= high
    assert "time in handlers" in proc.stdout
    assert not (tmp_path / ".flowdsl").exists()  # no store


def test_bench_takes_set(tmp_path: Path) -> None:
    write(tmp_path / "bench_flow.py", """
        from flowdsl import Flow

        flow = Flow("bench")


        @flow.task
        def double(n):
            return 2 * n
    """)
    assert flowdsl(tmp_path, "bench", "bench_flow.py", "-n", "2").returncode == 2
    proc = flowdsl(tmp_path, "bench", "bench_flow.py", "-n", "2", "--set", "n=4")
    assert proc.returncode == 0, proc.stderr
    assert "overhead per task" in proc.stdout


# -- inputs and targets --------------------------------------------------------------------------
def test_set_values_are_json_when_valid_json(tmp_path: Path) -> None:
    write(tmp_path / "inputs_flow.py", INPUTS)
    (tmp_path / "in.json").write_text(json.dumps({"number": 1, "text": "from file"}))
    proc = flowdsl(tmp_path, "run", "inputs_flow.py:flow", "--json", "--input", "in.json",
                   "--set", "number=42", "--set", "flag=true", "--set", "items=[1, 2]",
                   "--set", "quoted=\"7\"")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["tasks"]["describe"]["result"]
    assert result["kinds"] == ["int", "bool", "list", "str", "str"]
    assert result["values"] == [42, True, [1, 2], "from file", "7"]
    words = flowdsl(tmp_path, "run", "inputs_flow.py", "--json", "--set", "number=not json",
                    "--set", "flag=a=b", "--set", "items=", "--set", "text={x",
                    "--set", "quoted=null")
    assert words.returncode == 0, words.stderr
    values = json.loads(words.stdout)["tasks"]["describe"]["result"]["values"]
    assert values == ["not json", "a=b", "", "{x", None]


def test_module_with_several_flows_lists_them(tmp_path: Path) -> None:
    write(tmp_path / "two_flows.py", """
        from flowdsl import Flow

        nightly = Flow("nightly")
        hourly = Flow("hourly")
        alias = hourly  # the same flow twice is still one flow


        @nightly.task
        def a():
            return 1


        @hourly.task
        def b():
            return 2
    """)
    proc = flowdsl(tmp_path, "plan", "two_flows.py")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "several flows" in line and "nightly" in line and "hourly" in line
    assert "alias" not in line
    chosen = flowdsl(tmp_path, "plan", "two_flows.py:hourly")
    assert chosen.returncode == 0 and re.search(r"^\s*1\s+b\s", chosen.stdout, re.M)


def test_target_as_module_name(tmp_path: Path) -> None:
    package = tmp_path / "mypipes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package / "daily.py", INPUTS)
    proc = flowdsl(tmp_path, "plan", "mypipes.daily")
    assert proc.returncode == 0, proc.stderr
    assert "describe" in proc.stdout
    assert flowdsl(tmp_path, "graph", "mypipes.daily:flow").returncode == 0


# -- the progress bar ---------------------------------------------------------------------------
SLOW = '''
    import time

    from flowdsl import Flow

    flow = Flow("slow")


    @flow.task
    def slow_one():
        time.sleep(0.4)


    @flow.task
    def slow_two(slow_one):
        time.sleep(0.4)


    @flow.task
    def slow_three(slow_two):
        time.sleep(0.4)
'''

# The same three tasks for the tests that look for the bar: ``slow_two`` runs until the test
# has seen the bar name it (the test writes the file ``bar-seen``), not for a set time.
UNTIL_SEEN = '''
    import time
    from pathlib import Path

    from flowdsl import Flow

    flow = Flow("slow")


    @flow.task
    def slow_one():
        return 1


    @flow.task
    def slow_two(slow_one):
        seen, deadline = Path(__file__).with_name("bar-seen"), time.monotonic() + 30
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.01)


    @flow.task
    def slow_three(slow_two):
        return 3
'''


@pytest.mark.slow
def test_no_progress_bar_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    write(tmp_path / "slow_flow.py", SLOW)
    proc = flowdsl(tmp_path, "run", "slow_flow.py")
    assert proc.returncode == 0, proc.stderr
    assert "━" not in proc.stdout and "\x1b[" not in proc.stdout
    assert "running slow" not in proc.stdout + proc.stderr


def run_on_a_terminal(cwd: Path, *args: str, answer: str = "") -> str:
    """Run ``flowdsl ARGS`` with stdout on a pseudo-terminal; return what it drew. Once it
    has drawn ``answer``, write the file ``bar-seen`` in ``cwd`` (see ``UNTIL_SEEN``)."""
    import pty

    leader, follower = pty.openpty()
    env = environment(TERM="xterm-256color")
    proc = subprocess.Popen([*COMMAND, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
        if answer and answer.encode() in b"".join(chunks):
            (cwd / "bar-seen").touch()
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    proc.stderr.close()
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
@pytest.mark.parametrize("quiet", [False, True], ids=["shown", "quiet"])
def test_progress_bar_on_a_terminal(tmp_path: Path, quiet: bool) -> None:
    if quiet:  # 1.2 s of work: a bar would have shown by then
        write(tmp_path / "slow_flow.py", SLOW)
        drawn = run_on_a_terminal(tmp_path, "run", "slow_flow.py", "--quiet")
        assert "succeeded" in drawn
        assert "running slow" not in drawn and "━" not in drawn
    else:
        write(tmp_path / "slow_flow.py", UNTIL_SEEN)
        drawn = run_on_a_terminal(tmp_path, "run", "slow_flow.py", answer="running slow_two")
        assert "succeeded" in drawn
        assert (tmp_path / "bar-seen").exists()  # slow_two was released by the bar, not late
        assert "running slow_two" in drawn  # the task running, after 0.5 s
        assert re.search(r"1/3", drawn)  # tasks done / total


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
def test_progress_bar_shows_an_eta_once_the_store_has_history(tmp_path: Path) -> None:
    write(tmp_path / "slow_flow.py", UNTIL_SEEN)
    first = run_on_a_terminal(tmp_path, "run", "slow_flow.py", answer="running slow_two")
    assert "running slow_two" in first and "ETA" not in first  # no history yet: no ETA
    (tmp_path / "bar-seen").unlink()
    second = run_on_a_terminal(tmp_path, "run", "slow_flow.py", answer="ETA")
    # the earlier run's slow_two ran about as long as the bar's half-second wait: a second or
    # less remains once this one's bar shows
    assert re.search(r"ETA 0:00:0[0-2]", second), second


def test_progress_bar_waits_half_a_second(tmp_path: Path) -> None:
    drawn = run_on_a_terminal(tmp_path, "run", str(DATA_PROCESSING))
    assert "succeeded" in drawn
    assert "running " not in drawn and "━" not in drawn  # a quick run shows no bar


# -- the library stays light ----------------------------------------------------------------------
def test_import_flowdsl_imports_neither_click_nor_rich() -> None:
    code = "import sys, flowdsl; print(sorted({'click', 'rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=environment()).stdout
    assert out.strip() == "[]"
