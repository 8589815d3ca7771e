"""Resume as a user relies on it: completed tasks are not run again and are restored exactly
(results, previous_results, trace, shared state), a succeeded run is left untouched, inputs and
definition changes are refused unless forced (and then only what they affect re-runs),
fingerprints are stable across processes, idempotency keys are stable, and ownership of a run
in progress is respected while a dead owner's run is taken over."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowdsl import (
    DELETED,
    Flow,
    Priority,
    ResumeError,
    RunStatus,
    TaskContext,
    TaskStatus,
    current_task,
)
from flowdsl.store import SqliteStore, open_store
from flowdsl.store.opening import fingerprints_of

RESTORED = "restored from the run store"


# -- a pipeline in the seed program's style --------------------------------------------------------

def build_pipeline(calls: list, flags: dict) -> Flow:
    """load -> clean -> tidy -> (with stats) fragile -> publish; audit is independent.
    ``fragile`` raises while ``flags["fail"]``; ``clean`` fails its first attempt."""
    flow = Flow("pipeline")

    @flow.task(priority=Priority.HIGH, produces=["rows"])
    def load(data_source):
        calls.append("load")
        return {"rows": [3, 1, 2], "dataset": data_source}

    @flow.task(retries=2, retry_wait=0)
    def clean(load, context: TaskContext):
        calls.append("clean")
        flags["clean_attempts"] = flags.get("clean_attempts", 0) + 1
        if flags["clean_attempts"] == 1:
            raise ConnectionError("flaky source")
        context.shared_state["cleaned"] = True
        context.shared_state["scratch"] = {"tmp": (1, 2)}
        return sorted(load["rows"])

    @flow.task
    def tidy(clean, context: TaskContext):
        calls.append("tidy")
        del context.shared_state["scratch"]
        context.shared_state["cleaned"] = "tidied"
        return [r * 10 for r in clean]

    @flow.task(depends_on=["load"])
    def stats(rows):
        calls.append("stats")
        return {"sum": sum(rows), "max": max(rows)}

    @flow.task
    def fragile(tidy, stats, context: TaskContext):
        calls.append("fragile")
        if flags.get("fail"):
            raise RuntimeError("fragile failed")
        # what its ancestors left in the shared state (audit, independent, may run before or after)
        seen = {k: context.shared_state.get(k, "absent") for k in ("rows", "cleaned", "scratch")}
        context.shared_state["final"] = len(tidy)
        return {"tidy": tidy, "stats": stats, "seen": sorted(seen.items(), key=repr)}

    @flow.task
    def publish(fragile):
        calls.append("publish")
        return f"published {fragile['stats']['sum']}"

    @flow.task(priority=Priority.LOW)
    def audit(context: TaskContext):
        calls.append("audit")
        context.shared_state["audited"] = True
        return "audit ok"

    return flow


INPUTS = {"data_source": "customers.csv"}


def uninterrupted():
    calls: list = []
    result = build_pipeline(calls, {"fail": False}).run(INPUTS)
    assert result.status is RunStatus.SUCCEEDED
    return result


def test_resume_after_a_failure_restores_completed_tasks_and_runs_the_rest(store_url):
    path = store_url
    calls: list = []
    flags = {"fail": True}
    flow = build_pipeline(calls, flags)
    first = flow.run(INPUTS, store=path, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    assert first.tasks["fragile"].status is TaskStatus.FAILED
    assert first.tasks["publish"].status is TaskStatus.SKIPPED
    assert first.tasks["clean"].attempts == 2
    completed_first = [e["task_id"] for e in first.context.previous_results]
    assert completed_first == ["load", "clean", "tidy", "stats", "audit"]

    # a new process would build the flow again: do the same, with fresh counters
    calls2: list = []
    flow2 = build_pipeline(calls2, {"fail": False, "clean_attempts": 99})
    resumed = flow2.run(store=path, resume=first.run_id)  # inputs reused from the store

    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.run_id == first.run_id
    assert calls2 == ["fragile", "publish"]  # completed tasks not executed again
    expected = uninterrupted()
    assert resumed.results == expected.results
    assert resumed.context.shared_state == expected.context.shared_state
    assert dict(resumed.context.shared_state) == {
        "rows": [3, 1, 2], "cleaned": "tidied", "final": 3, "audited": True}

    for task_id in completed_first:
        task = resumed.tasks[task_id]
        assert task.status is TaskStatus.COMPLETED
        assert task.reason == RESTORED
        assert task.attempts == first.tasks[task_id].attempts
    assert resumed.tasks["clean"].attempts == 2  # its recorded attempts, not 1 or 0
    assert resumed.tasks["fragile"].reason != RESTORED
    assert resumed.tasks["fragile"].attempts == 1

    # previous_results: restored ones first, in their original order, then the new ones
    order = [e["task_id"] for e in resumed.context.previous_results]
    assert order == completed_first + ["fragile", "publish"]
    for entry in resumed.context.previous_results[:5]:
        assert entry["result"] == first.results[entry["task_id"]]
        assert isinstance(entry["timestamp"], float)
    # trace: a task_completed entry marked restored for each restored task
    restored_trace = [e for e in resumed.context.execution_trace
                      if e["action"] == "task_completed" and e["details"] == {"restored": True}]
    assert [e["task_id"] for e in restored_trace] == completed_first
    new_trace = [e["task_id"] for e in resumed.context.execution_trace
                 if e["action"] == "task_completed" and e["details"] != {"restored": True}]
    assert new_trace == ["fragile", "publish"]

    # the deltas were replayed: tidy's record holds its deletion and overwrite
    assert resumed.context.delta("tidy") == {"scratch": DELETED, "cleaned": "tidied"}
    assert resumed.context.delta("tidy") == expected.context.delta("tidy")

    summary = resumed.summary
    assert summary["restored_tasks"] == 5
    assert summary["successful_tasks"] == 7
    assert summary["failed_tasks"] == 0
    # "tasks that ran" (average, overhead) are the two that ran in this session
    ran = [resumed.tasks["fragile"].duration, resumed.tasks["publish"].duration]
    assert summary["total_execution_time"] == pytest.approx(sum(ran))
    assert summary["average_task_duration"] == pytest.approx(sum(ran) / 2)


def test_resumed_run_keeps_its_id_and_history_shows_two_sessions(store_url):
    path = store_url
    flags = {"fail": True}
    flow = build_pipeline([], flags)
    first = flow.run(INPUTS, store=path, run_id="etl-2024-06-01", raise_on_failure=False)
    assert first.status.value == "failed"
    flags["fail"] = False
    resumed = flow.run(INPUTS, store=path, resume="etl-2024-06-01")  # same inputs: fine
    assert resumed.run_id == "etl-2024-06-01"

    store = open_store(path)
    assert [r["run_id"] for r in store.runs()] == ["etl-2024-06-01"]
    record = store.get_run("etl-2024-06-01")
    assert record["status"] == "succeeded"
    assert len(record["sessions"]) == 2
    assert [s["pid"] for s in record["sessions"]] == [os.getpid(), os.getpid()]
    assert record["sessions"][0]["status"] == "failed"
    assert record["sessions"][1]["status"] == "succeeded"
    assert record["sessions"][1]["started"] >= record["sessions"][0]["started"]
    assert {t["status"] for t in record["tasks"].values()} == {"completed"}
    assert record["tasks"]["publish"]["result"] == "published 6"


def _file_state(path: Path):
    def stat(p: Path):
        if not p.exists():
            return (0, None)
        s = p.stat()
        return (s.st_size, s.st_mtime_ns)

    wal = path.with_name(path.name + "-wal")
    return stat(path), stat(wal)[0]


@pytest.mark.parametrize("as_path", [True, False], ids=["store=path", "store=SqliteStore"])
def test_resuming_a_succeeded_run_executes_nothing_and_writes_nothing(tmp_path, as_path):
    path = tmp_path / "runs.db"
    calls: list = []
    flow = build_pipeline(calls, {"fail": False})
    store = SqliteStore(path)
    first = flow.run(INPUTS, store=store)
    assert first.status is RunStatus.SUCCEEDED
    store.close()
    before_record = SqliteStore(path).get_run(first.run_id)
    os.utime(path, ns=(10**18, 10**18))  # a stamp in 2001: any write shows in the mtime
    before_files = _file_state(path)

    calls.clear()
    resumed = flow.run(store=path if as_path else SqliteStore(path), resume=first.run_id)

    assert calls == []
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.run_id == first.run_id
    assert resumed.results == first.results
    assert all(t.status is TaskStatus.COMPLETED and t.reason == RESTORED
               for t in resumed.tasks.values())
    assert resumed.context.shared_state == first.context.shared_state
    assert resumed.summary["restored_tasks"] == len(first.tasks)
    assert resumed.summary["successful_tasks"] == len(first.tasks)
    assert resumed.summary["average_task_duration"] == 0.0  # nothing ran
    after_record = SqliteStore(path).get_run(first.run_id)
    assert after_record == before_record  # no new session, nothing rewritten
    assert len(after_record["sessions"]) == 1
    assert _file_state(path) == before_files


# -- inputs -------------------------------------------------------------------------------------------

def build_inputs_flow(calls: list, flags: dict) -> Flow:
    flow = Flow("inputs")

    @flow.task
    def read_x(x):
        calls.append("read_x")
        return x * 2

    @flow.task
    def after_x(read_x):
        calls.append("after_x")
        return read_x + 1

    @flow.task
    def read_y(y):
        calls.append("read_y")
        return y * 3

    @flow.task
    def after_y(read_y):
        calls.append("after_y")
        return read_y + 1

    @flow.task(requires=["z"])
    def gate(context: TaskContext):
        calls.append("gate")
        if flags["fail"]:
            raise RuntimeError("gate closed")
        return "open"

    return flow


def test_resume_reuses_the_stored_inputs(store_url):
    path = store_url
    flags = {"fail": True}
    calls: list = []
    flow = build_inputs_flow(calls, flags)
    first = flow.run({"x": 1, "y": 2, "z": 0}, store=path, raise_on_failure=False)
    assert open_store(path).get_run(first.run_id)["inputs"] == {"x": 1, "y": 2, "z": 0}
    flags["fail"] = False
    calls.clear()
    resumed = flow.run(store=path, resume=first.run_id, raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["gate"]
    assert resumed.context.data == {"x": 1, "y": 2, "z": 0}


def test_resume_with_other_inputs_is_refused_without_force(store_url):
    path = store_url
    flags = {"fail": True}
    calls: list = []
    flow = build_inputs_flow(calls, flags)
    first = flow.run({"x": 1, "y": 2, "z": 0}, store=path, raise_on_failure=False)
    flags["fail"] = False
    calls.clear()
    before = open_store(path).get_run(first.run_id)
    with pytest.raises(ResumeError) as info:
        flow.run({"x": 1, "y": 5, "z": 0}, store=path, resume=first.run_id, raise_on_failure=False)
    assert "'y'" in str(info.value) and "force" in str(info.value)
    assert calls == []
    assert open_store(path).get_run(first.run_id) == before


def test_force_keeps_only_tasks_whose_inputs_and_ancestors_inputs_did_not_change(store_url):
    path = store_url
    flags = {"fail": True}
    calls: list = []
    flow = build_inputs_flow(calls, flags)
    first = flow.run({"x": 1, "y": 2, "z": 0}, store=path, raise_on_failure=False)
    assert first.results == {"read_x": 2, "after_x": 3, "read_y": 6, "after_y": 7}
    flags["fail"] = False
    calls.clear()
    resumed = flow.run({"x": 1, "y": 5, "z": 0}, store=path, resume=first.run_id, force=True)
    assert resumed.status is RunStatus.SUCCEEDED
    # x unchanged: read_x and its descendant kept; y changed: read_y and after_y re-run
    assert sorted(calls) == ["after_y", "gate", "read_y"]
    assert resumed.tasks["read_x"].reason == RESTORED
    assert resumed.tasks["after_x"].reason == RESTORED
    assert resumed.tasks["after_y"].reason != RESTORED
    assert resumed.results == {"read_x": 2, "after_x": 3, "read_y": 15, "after_y": 16,
                               "gate": "open"}
    assert resumed.results == build_inputs_flow([], flags).run({"x": 1, "y": 5, "z": 0}).results
    # the new inputs are the run's inputs now
    assert open_store(path).get_run(first.run_id)["inputs"] == {"x": 1, "y": 5, "z": 0}


# -- definition changes ------------------------------------------------------------------------------

def build_defined(calls: list, flags: dict, version: int, retries: int = 0) -> Flow:
    """The same flow, with ``transform``'s body depending on ``version``."""
    flow = Flow("defs")

    @flow.task
    def extract():
        calls.append("extract")
        return 10

    if version == 1:
        @flow.task(retries=retries, retry_wait=0)
        def transform(extract):
            calls.append("transform")
            return extract + 1
    else:
        @flow.task(retries=retries, retry_wait=0)
        def transform(extract):
            calls.append("transform")
            return extract + 100

    @flow.task
    def load(transform):  # unchanged itself, but downstream of transform
        calls.append("load")
        return transform * 2

    @flow.task
    def side(extract):  # unchanged, not downstream of transform
        calls.append("side")
        return extract - 1

    @flow.task
    def finish(load, side):
        calls.append("finish")
        if flags["fail"]:
            raise RuntimeError("finish failed")
        return load + side

    return flow


def test_closure_values_do_not_change_the_fingerprint():
    one = fingerprints_of(build_defined([], {"fail": True}, 1).compile())
    two = fingerprints_of(build_defined(["other"], {"fail": False}, 1).compile())
    assert one == two
    changed = fingerprints_of(build_defined([], {"fail": True}, 2).compile())
    assert {t for t in one if one[t] != changed[t]} == {"transform"}


@pytest.mark.parametrize("change", ["code", "retries"])
def test_definition_change_is_refused_naming_the_changed_task(store_url, change):
    path = store_url
    first = build_defined([], {"fail": True}, 1).run(store=path, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    calls: list = []
    changed = (build_defined(calls, {"fail": False}, 2) if change == "code"
               else build_defined(calls, {"fail": False}, 1, retries=3))
    before = open_store(path).get_run(first.run_id)
    with pytest.raises(ResumeError) as info:
        changed.run(store=path, resume=first.run_id, raise_on_failure=False)
    message = str(info.value)
    assert "transform" in message
    assert "force" in message
    for unchanged in ("extract", "load", "side", "finish"):
        assert unchanged not in message
    assert calls == []
    assert open_store(path).get_run(first.run_id) == before


def test_force_after_a_definition_change_reruns_the_changed_task_and_downstream(store_url):
    path = store_url
    first = build_defined([], {"fail": True}, 1).run(store=path, raise_on_failure=False)
    assert set(first.results) == {"extract", "transform", "load", "side"}
    calls: list = []
    resumed = build_defined(calls, {"fail": False}, 2).run(store=path, resume=first.run_id,
                                                           force=True, raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert sorted(calls) == ["finish", "load", "transform"]  # extract and side kept
    assert resumed.tasks["extract"].reason == RESTORED
    assert resumed.tasks["side"].reason == RESTORED
    assert resumed.results == {"extract": 10, "transform": 110, "load": 220, "side": 9,
                               "finish": 229}
    assert resumed.results == build_defined([], {"fail": False}, 2).run(raise_on_failure=False).results

    # the store now holds the new definition: resuming with it again is not a change
    calls.clear()
    again = build_defined(calls, {"fail": False}, 2).run(store=path, resume=first.run_id)
    assert calls == [] and again.results == resumed.results


def test_an_added_task_runs_and_a_removed_completed_task_is_a_definition_change(store_url):
    path = store_url
    with_extra = build_defined([], {"fail": True}, 1)
    with_extra.task(lambda extract: extract * 3, id="extra_step")
    first = with_extra.run(store=path, raise_on_failure=False)
    assert first.results["extra_step"] == 30
    with pytest.raises(ResumeError, match="removed: extra_step"):
        build_defined([], {"fail": False}, 1).run(store=path, resume=first.run_id)
    bigger = build_defined([], {"fail": False}, 1)
    bigger.task(lambda extract: extract * 3, id="extra_step")
    bigger.task(lambda finish: finish, id="added_step")
    resumed = bigger.run(store=path, resume=first.run_id)  # an added task: no force needed
    assert resumed.results["added_step"] == resumed.results["finish"]
    assert resumed.tasks["extra_step"].reason == RESTORED


# -- fingerprints across processes ---------------------------------------------------------------------

FINGERPRINT_FLOW = textwrap.dedent('''
    import tenacity
    from flowdsl import Flow, Priority

    class Transient(Exception):
        pass

    flow = Flow("fp")

    @flow.task(priority=Priority.HIGH, produces=["rows"], requires=["source"])
    def load(source, kinds=frozenset({"csv", "tsv", "json"})):
        if source.rsplit(".", 1)[-1] in {"csv", "tsv", "json", "parquet", "xml"}:
            return {"rows": [1, 2, 3]}
        return {"rows": []}

    @flow.task(retries=2, retry_wait=tenacity.wait_fixed(0.5), retry_on=(Transient, OSError),
               timeout=3.0)
    def clean(load, rows):
        keep = lambda r: r not in {0, None, "", "n/a"}
        def nested(values):
            return [v for v in values if keep(v)]
        return nested(rows)

    @flow.task(depends_on=["clean"], serializer="pickle")
    def report(clean, note="a constant string"):
        return {"n": len(clean), "labels": ("x", "y"), "note": note}

    @flow.task
    def default_wait(report):
        return report
''')

PRINT_FINGERPRINTS = (
    "import importlib.util, json, sys\n"
    "spec = importlib.util.spec_from_file_location('fpflow', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
    "from flowdsl.store.opening import fingerprints_of\n"
    "print(json.dumps(fingerprints_of(module.flow.compile()), sort_keys=True))\n"
)


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_fingerprints_are_identical_across_processes_and_hash_seeds(tmp_path):
    flow_file = tmp_path / "fpflow.py"
    flow_file.write_text(FINGERPRINT_FLOW)
    outputs = []
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", PRINT_FINGERPRINTS, str(flow_file)],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    assert set(outputs[0]) == {"load", "clean", "report", "default_wait"}
    assert len(set(outputs[0].values())) == 4
    here = fingerprints_of(load_module(flow_file, "fpflow").flow.compile())
    assert here == outputs[0]


def test_fingerprints_are_computed_once_per_plan(tmp_path, monkeypatch):
    import flowdsl.store.opening as journal

    computed = []
    original = journal.plan_fingerprints

    def counting(*args, **kwargs):
        computed.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(journal, "plan_fingerprints", counting)
    flow = build_defined([], {"fail": False}, 1)
    for _ in range(3):
        assert flow.run(store=tmp_path / "runs.db").status is RunStatus.SUCCEEDED
    assert len(computed) == 1
    assert fingerprints_of(flow.compile()) is fingerprints_of(flow.compile())


# -- idempotency keys ----------------------------------------------------------------------------------

def test_idempotency_key_is_stable_across_retries_and_a_resume(store_url):
    path = store_url
    seen: list = []
    flags = {"fail": True}

    def build() -> Flow:
        flow = Flow("idem")

        @flow.task
        def prepare():
            current = current_task()
            seen.append(("prepare", current.idempotency_key, current.task_id, current.attempt))
            return 1

        @flow.task(retries=2, retry_wait=0, depends_on=["prepare"])
        def charge(task_input, context: TaskContext):
            current = current_task()
            seen.append(("charge", task_input["idempotency_key"], current.idempotency_key,
                         context.idempotency_key, current.task_id, current.attempt))
            if flags["fail"]:
                raise ConnectionError("payment gateway timeout")
            return task_input["prepare_result"] + 1

        return flow

    first = build().run(store=path, run_id="order-42", raise_on_failure=False)
    assert first.tasks["charge"].status is TaskStatus.FAILED
    assert first.tasks["charge"].attempts == 3
    flags["fail"] = False
    resumed = build().run(store=path, resume="order-42", raise_on_failure=False)
    assert resumed.status is RunStatus.SUCCEEDED
    assert current_task() is None  # only inside a task

    charge = [s for s in seen if s[0] == "charge"]
    assert len(charge) == 4  # three attempts, then one after the resume
    for _, from_input, from_current, from_context, task_id, _attempt in charge:
        assert from_input == from_current == from_context == "order-42:charge"
        assert task_id == "charge"
    assert [s[5] for s in charge[:3]] == [1, 2, 3]
    assert [s for s in seen if s[0] == "prepare"] == [("prepare", "order-42:prepare", "prepare", 1)]


# -- ownership ------------------------------------------------------------------------------------------

OWNED_FLOW = textwrap.dedent('''
    import os, time
    from pathlib import Path
    from flowdsl import Flow

    flow = Flow("owned")

    def log(path, line):
        with open(path, "a") as handle:
            handle.write(f"{line} {os.getpid()}\\n")

    @flow.task
    def first(logfile):
        log(logfile, "first")
        return 1

    @flow.task
    def middle(first, logfile, control):
        log(logfile, "middle-start")
        mode = Path(control).read_text()
        if mode == "exit":
            os._exit(3)
        while Path(control).read_text() in ("hang", "block"):
            time.sleep(0.01)
        log(logfile, "middle-done")
        return first + 1

    @flow.task
    def last(middle, logfile):
        log(logfile, "last")
        return middle + 1
''')

RUNNER = textwrap.dedent('''
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("owned_flow", sys.argv[1])
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    if sys.argv[6:] == ["resume"]:
        result = module.flow.run(store=sys.argv[2], resume=sys.argv[3])
    else:
        result = module.flow.run({"logfile": sys.argv[4], "control": sys.argv[5]},
                                 store=sys.argv[2], run_id=sys.argv[3])
    print(result.status.value)
    sys.exit(0 if result.status.value == "succeeded" else 1)
''')


@pytest.fixture
def owned(tmp_path, store_url):
    flow_file = tmp_path / "owned_flow.py"
    flow_file.write_text(OWNED_FLOW)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    paths = {"flow": flow_file, "runner": runner, "store": store_url,
             "log": tmp_path / "log.txt", "control": tmp_path / "control"}
    paths["log"].touch()
    return paths


def start_owner(owned, run_id, mode, *extra):
    owned["control"].write_text(mode)
    return subprocess.Popen(
        [sys.executable, str(owned["runner"]), str(owned["flow"]), str(owned["store"]), run_id,
         str(owned["log"]), str(owned["control"]), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(path: Path, text: str, proc=None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in {path}"
        if proc is not None and proc.poll() is not None and text not in path.read_text():
            raise AssertionError(f"process ended ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.005)


def log_lines(path: Path) -> list[tuple[str, int]]:
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def proc_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return raw[raw.rindex(")") + 2:].split()[0]


@pytest.mark.parametrize("death", ["os_exit", "sigkill_reaped", "sigkill_zombie"])
def test_run_left_running_by_a_dead_process_is_taken_over_by_resume(owned, death):
    proc = start_owner(owned, "orphan", "exit" if death == "os_exit" else "hang")
    try:
        if death == "os_exit":
            assert proc.wait(timeout=30) == 3
        else:
            wait_for_line(owned["log"], "middle-start", proc)
            proc.send_signal(signal.SIGKILL)
            if death == "sigkill_reaped":
                proc.wait(timeout=30)
            else:  # not reaped yet: a zombie, which counts as gone
                deadline = time.monotonic() + 10
                while proc_state(proc.pid) != "Z":
                    assert time.monotonic() < deadline, proc_state(proc.pid)
                    time.sleep(0.005)

        store = open_store(owned["store"])
        record = store.get_run("orphan")
        assert record["status"] == "running"  # the dead owner could not say otherwise
        assert record["tasks"]["first"]["status"] == "completed"
        assert record["tasks"]["middle"]["status"] == "running"

        owned["control"].write_text("ok")
        module = load_module(owned["flow"], "owned_flow")
        resumed = module.flow.run(store=owned["store"], resume="orphan")
        assert resumed.status is RunStatus.SUCCEEDED
        assert resumed.results == {"first": 1, "middle": 2, "last": 3}
        assert resumed.tasks["first"].reason == RESTORED

        lines = log_lines(owned["log"])
        assert [name for name, _ in lines].count("first") == 1  # not run again
        starts = [pid for name, pid in lines if name == "middle-start"]
        assert starts == [proc.pid, os.getpid()]  # the task in flight ran again, here
        record = store.get_run("orphan")
        assert record["status"] == "succeeded"
        assert [s["pid"] for s in record["sessions"]] == [proc.pid, os.getpid()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_resume_of_a_run_whose_owner_is_alive_names_the_owner(owned):
    proc = start_owner(owned, "busy", "block")
    try:
        wait_for_line(owned["log"], "middle-start", proc)
        module = load_module(owned["flow"], "owned_flow")
        with pytest.raises(ResumeError) as info:
            module.flow.run(store=owned["store"], resume="busy")
        assert str(proc.pid) in str(info.value)
        assert proc.poll() is None  # untouched by the refused resume
        assert [name for name, _ in log_lines(owned["log"])].count("first") == 1

        owned["control"].write_text("go")  # let the owner finish
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        record = open_store(owned["store"]).get_run("busy")
        assert record["status"] == "succeeded"
        assert len(record["sessions"]) == 1  # the refused resume added none
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_two_processes_resuming_one_run_exactly_one_runs_it(owned):
    dead = start_owner(owned, "contested", "exit")
    assert dead.wait(timeout=30) == 3  # left RUNNING by a dead owner
    resumers = [start_owner(owned, "contested", "block", "resume") for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while sum(1 for name, _ in log_lines(owned["log"]) if name == "middle-start") < 2:
            assert time.monotonic() < deadline, [p.poll() for p in resumers]
            time.sleep(0.005)
        # one resumer is blocked in the task; the other must have been refused
        loser_deadline = time.monotonic() + 30
        while all(p.poll() is None for p in resumers):
            assert time.monotonic() < loser_deadline, "neither resumer was refused"
            time.sleep(0.005)
        loser = next(p for p in resumers if p.poll() is not None)
        winner = next(p for p in resumers if p is not loser)
        _, loser_err = loser.communicate(timeout=30)
        assert loser.returncode != 0
        assert "ResumeError" in loser_err
        assert str(winner.pid) in loser_err  # names the owner
        owned["control"].write_text("go")
        out, err = winner.communicate(timeout=30)
        assert winner.returncode == 0, err
        assert out.strip() == "succeeded"
    finally:
        for p in resumers:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
    lines = log_lines(owned["log"])
    assert [pid for name, pid in lines if name == "middle-start"] == [dead.pid, winner.pid]
    assert [name for name, _ in lines].count("first") == 1
    assert [name for name, _ in lines].count("last") == 1
    record = open_store(owned["store"]).get_run("contested")
    assert record["status"] == "succeeded"
    assert [s["pid"] for s in record["sessions"]] == [dead.pid, winner.pid]
