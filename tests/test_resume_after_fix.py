"""Resume after a fix (DESIGN rev. 3): changing a task that had not completed needs no
force; a change to a completed task, or a removed completed task, still does. Module-level
constants a handler reads are part of its fingerprint. The CLI speaks CLI (``--force``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowdsl import Flow, ResumeError, RunStatus, TaskStatus
from flowdsl.store import open_store
from flowdsl.store.fingerprint import global_constants
from flowdsl.store.opening import fingerprints_of
from tests.test_cli import environment, flowdsl, one_line_error

RESTORED = "restored from the run store"


def build(calls: list, *, publish_fixed: bool = False, load_version: int = 1,
          extra: bool = False, with_audit: bool = True, notify_version: int = 1,
          with_publish: bool = True) -> Flow:
    """load -> transform -> publish (fails until fixed) -> notify; audit is independent."""
    flow = Flow("fixable")

    if load_version == 1:
        @flow.task
        def load():
            calls.append("load")
            return [1, 2, 3]
    else:
        @flow.task
        def load():
            calls.append("load")
            return [1, 2, 3, 4]

    @flow.task
    def transform(load):
        calls.append("transform")
        return [x * 10 for x in load]

    if not with_publish:
        pass
    elif publish_fixed:
        @flow.task
        def publish(transform):
            calls.append("publish")
            return sum(transform)
    else:
        @flow.task
        def publish(transform):
            calls.append("publish")
            raise ConnectionError("service down")

    if not with_publish:
        pass
    elif notify_version == 1:
        @flow.task
        def notify(publish):
            calls.append("notify")
            return f"sent {publish}"
    else:
        @flow.task
        def notify(publish):
            calls.append("notify")
            return f"notified {publish}"

    if with_audit:
        @flow.task
        def audit():
            calls.append("audit")
            return "ok"

    if extra:
        @flow.task
        def archive(transform):
            calls.append("archive")
            return len(transform)

    return flow


def failed_run(store_url: str):
    first = build([]).run(store=store_url, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    assert first.tasks["publish"].status is TaskStatus.FAILED
    assert first.tasks["notify"].status is TaskStatus.SKIPPED
    return first


def test_fixing_the_failed_task_and_resuming_needs_no_force(store_url):
    first = failed_run(store_url)
    calls: list = []
    resumed = build(calls, publish_fixed=True).run(store=store_url, resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["publish", "notify"]
    for task_id in ("load", "transform", "audit"):
        assert resumed.tasks[task_id].reason == RESTORED
    assert resumed.results["notify"] == "sent 60"


def test_a_skipped_task_may_change_too(store_url):
    first = failed_run(store_url)
    resumed = build([], publish_fixed=True, notify_version=2).run(store=store_url,
                                                                  resume=first.run_id)
    assert resumed.results["notify"] == "notified 60"


def test_a_changed_completed_task_still_needs_force_naming_it(store_url):
    first = failed_run(store_url)
    calls: list = []
    changed = build(calls, publish_fixed=True, load_version=2)
    with pytest.raises(ResumeError) as info:
        changed.run(store=store_url, resume=first.run_id)
    message = str(info.value)
    assert "load" in message and "force=True" in message
    assert "publish" not in message  # it did not complete: its change is not the problem
    assert calls == []
    resumed = changed.run(store=store_url, resume=first.run_id, force=True)
    assert sorted(calls) == ["load", "notify", "publish", "transform"]
    assert resumed.tasks["audit"].reason == RESTORED
    assert resumed.results["publish"] == 100


def test_an_added_task_runs_without_force(store_url):
    first = failed_run(store_url)
    calls: list = []
    resumed = build(calls, publish_fixed=True, extra=True).run(store=store_url,
                                                               resume=first.run_id)
    assert sorted(calls) == ["archive", "notify", "publish"]
    assert resumed.results["archive"] == 3
    assert resumed.tasks["transform"].reason == RESTORED


def test_a_removed_completed_task_needs_force(store_url):
    first = failed_run(store_url)
    smaller = build([], publish_fixed=True, with_audit=False)
    with pytest.raises(ResumeError, match="removed: audit"):
        smaller.run(store=store_url, resume=first.run_id)
    resumed = smaller.run(store=store_url, resume=first.run_id, force=True)
    assert resumed.status is RunStatus.SUCCEEDED
    assert "audit" not in resumed.tasks


def test_a_removed_task_that_had_not_completed_needs_no_force(store_url):
    first = failed_run(store_url)
    resumed = build([], with_publish=False).run(store=store_url, resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert set(resumed.tasks) == {"load", "transform", "audit"}
    assert open_store(store_url).get_run(first.run_id)["status"] == "succeeded"


# -- module-level constants in the fingerprint ------------------------------------------------

LIMIT = 3
LABELS = ("a", ("b", 2.5), frozenset({None, b"x"}))
NOT_A_CONSTANT = [1, 2]  # mutable: not covered


def _reads_constants(rows):
    def nested(row):
        return row[:LIMIT], LABELS
    return [nested(r) for r in rows], NOT_A_CONSTANT, len


def test_the_constants_a_handler_reads_are_in_its_fingerprint(monkeypatch):
    found = dict((name, value) for name, value in global_constants(_reads_constants))
    assert set(found) == {"LIMIT", "LABELS"}  # nested code included; list and builtins not

    def fingerprint():
        flow = Flow("constants")
        flow.task(_reads_constants, id="reader")
        return fingerprints_of(flow.compile())["reader"]

    before = fingerprint()
    assert fingerprint() == before
    monkeypatch.setitem(globals(), "LIMIT", 4)
    assert fingerprint() != before
    monkeypatch.setitem(globals(), "LIMIT", 3)
    monkeypatch.setitem(globals(), "NOT_A_CONSTANT", [9])
    assert fingerprint() == before


# -- the command line -------------------------------------------------------------------------

CONSTANT_FLOW = '''
from flowdsl import Flow

THRESHOLD = {threshold}

flow = Flow("constant_demo")

@flow.task
def rows():
    return list(range(10))

@flow.task
def kept(rows):
    return [r for r in rows if r > THRESHOLD]

@flow.task
def publish(kept):
    import os
    if not os.environ.get("PUBLISH_OK"):
        raise ConnectionError("down")
    return len(kept)
'''


def write_flow(path: Path, threshold: int) -> Path:
    path.write_text(textwrap.dedent(CONSTANT_FLOW.format(threshold=threshold)))
    return path


@pytest.mark.slow
def test_cli_a_changed_constant_is_refused_without_force_naming_the_task(tmp_path):
    flow_file = write_flow(tmp_path / "pipe.py", 5)
    first = flowdsl(tmp_path, "run", flow_file, "--run-id", "r1")
    assert first.returncode == 1, first.stderr
    write_flow(flow_file, 8)  # the constant that `kept` reads changed
    refused = flowdsl(tmp_path, "run", flow_file, "--resume", "r1",
                      env=environment(PUBLISH_OK="1"))
    assert refused.returncode == 2
    line = one_line_error(refused)
    assert "kept" in line and "--force" in line
    assert "force=True" not in line
    forced = flowdsl(tmp_path, "run", flow_file, "--resume", "r1", "--force", "--json",
                     env=environment(PUBLISH_OK="1"))
    assert forced.returncode == 0, forced.stderr
    record = json.loads(forced.stdout)
    assert record["tasks"]["kept"]["result"] == [9]  # not the stale [6, 7, 8, 9]
    assert record["tasks"]["publish"]["result"] == 1


@pytest.mark.slow
def test_cli_fixing_the_failed_task_resumes_without_force(tmp_path):
    flow_file = write_flow(tmp_path / "pipe.py", 5)
    assert flowdsl(tmp_path, "run", flow_file, "--run-id", "r1").returncode == 1
    flow_file.write_text(flow_file.read_text().replace(
        'raise ConnectionError("down")', 'return -1'))
    resumed = flowdsl(tmp_path, "run", flow_file, "--resume", "r1")
    assert resumed.returncode == 0, resumed.stderr
    rows = {line.split()[0]: line for line in resumed.stdout.splitlines() if line.strip()}
    assert RESTORED in rows["rows"] and RESTORED in rows["kept"]
    assert RESTORED not in rows["publish"]


def _reads_limit(rows):
    return rows[:LIMIT]


def test_a_constant_reassigned_in_the_same_process_changes_the_fingerprint(tmp_path,
                                                                          monkeypatch):
    """A notebook: the flow object (and its compiled plan) lives on while a cell reassigns a
    constant its handler reads; the cache must not hand back the old result."""
    flow = Flow("notebook", cache=True)
    flow.task(_reads_limit, id="head")
    store = tmp_path / "runs.db"
    assert flow.run({"rows": [1, 2, 3, 4]}, store=store).results["head"] == [1, 2, 3]
    assert flow.run({"rows": [1, 2, 3, 4]}, store=store).summary["cached_tasks"] == 1
    monkeypatch.setitem(globals(), "LIMIT", 2)
    again = flow.run({"rows": [1, 2, 3, 4]}, store=store)
    assert again.summary["cached_tasks"] == 0
    assert again.results["head"] == [1, 2]
