"""Failing loudly: a FAILED run raises `RunFailedError` once the run has finished, unless
``raise_on_failure=False``; the CLI, `measure_overhead` and `execute_sequence` never raise."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from flowdsl import (Flow, MissingOutputError, Priority, RunFailedError, RunStatus, TaskContext,
                     TaskStatus)
from flowdsl.measure import measure_overhead
from flowdsl.store import SqliteStore
from tests.flows import failing


def test_a_failed_run_raises_after_every_independent_task_ran(run_flow):
    flow = failing.build()

    with pytest.raises(RunFailedError) as info:
        run_flow(flow)

    result = info.value.result
    assert result.status is RunStatus.FAILED
    assert result.results == {"ok": "ok", "independent": "independent"}
    assert result.tasks["after"].status is TaskStatus.SKIPPED
    assert info.value.__cause__ is result.tasks["boom"].error
    assert type(info.value.__cause__) is failing.Boom
    assert str(info.value) == (f"run {result.run_id} of flow 'failing' failed: task 'boom' "
                               "failed: Boom: boom after ok; 1 task skipped")


def test_raise_on_failure_false_returns_the_failed_result(run_flow):
    result = run_flow(failing.build(), raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    assert type(result.tasks["boom"].error) is failing.Boom


def test_a_succeeded_run_does_not_raise(run_flow, flow):
    flow.task(lambda: 1, id="one")

    assert run_flow(flow).status is RunStatus.SUCCEEDED


@pytest.mark.one_at_a_time
def test_message_names_every_failed_task_first_line_only_and_counts(run_flow, flow):
    @flow.task(priority=Priority.HIGH)
    def first():
        raise ValueError("bad row 7\nTraceback-sized detail that stays out")

    @flow.task(priority=Priority.HIGH)
    def second():
        raise FileNotFoundError(2, "No such file or directory", "/data/in.csv")

    @flow.task
    def below(first):
        return 1

    @flow.task
    def further(below):
        return 2

    with pytest.raises(RunFailedError) as info:
        run_flow(flow)

    message = str(info.value)
    assert "task 'first' failed: ValueError: bad row 7;" in message
    assert "detail that stays out" not in message
    assert ("task 'second' failed: FileNotFoundError: [Errno 2] No such file or directory: "
            "'/data/in.csv'") in message
    assert message.endswith("2 tasks skipped")
    assert info.value.__cause__ is info.value.result.tasks["first"].error  # first in time


@pytest.mark.one_at_a_time
def test_a_critical_failure_counts_the_cancelled_tasks(run_flow):
    with pytest.raises(RunFailedError) as info:
        run_flow(failing.build(critical=True))

    assert info.value.result.tasks["independent"].status is TaskStatus.CANCELLED
    assert str(info.value).endswith("1 task skipped; 1 task cancelled")


def test_arun_raises_too():
    flow = failing.build()

    with pytest.raises(RunFailedError) as info:
        asyncio.run(flow.arun())

    assert info.value.result.results["independent"] == "independent"
    assert asyncio.run(flow.arun(raise_on_failure=False)).status is RunStatus.FAILED


def test_with_a_store_everything_is_journalled_before_it_raises(tmp_path):
    path = tmp_path / "runs.db"
    flow = failing.build()

    with pytest.raises(RunFailedError) as info:
        flow.run(store=path, run_id="loud")

    assert info.value.result.run_id == "loud"
    with SqliteStore(path) as store:
        stored = store.get_run("loud")
    assert stored["status"] == "failed"
    assert {t: v["status"] for t, v in stored["tasks"].items()} == {
        "ok": "completed", "boom": "failed", "after": "skipped", "independent": "completed"}
    assert "Boom: boom after ok" in stored["tasks"]["boom"]["error"]


def test_raise_for_status_sets_the_result_too(run_flow):
    result = run_flow(failing.build(), raise_on_failure=False)

    with pytest.raises(RunFailedError) as info:
        result.raise_for_status()

    assert info.value.result is result
    assert info.value.__cause__ is result.tasks["boom"].error
    assert str(info.value) == str(result.failure())


def test_the_metrics_count_a_run_that_raised(flow):
    flow.task(lambda: 1, id="fine")

    @flow.task
    def broken():
        raise OSError("disk")

    with pytest.raises(RunFailedError):
        flow.run()

    assert flow.get_execution_metrics()["execution_stats"]["failed_tasks"] == 1


def test_measure_overhead_never_raises_for_a_failed_run():
    report = measure_overhead(failing.build(), repeat=2)

    assert len(report.runs) == 2
    assert all(summary["failed_tasks"] == 1 for summary in report.runs)


def test_the_cli_shows_a_failed_run_and_exits_1_without_a_traceback(tmp_path):
    target = tmp_path / "broken_flow.py"
    target.write_text(textwrap.dedent("""
        from flowdsl import Flow

        flow = Flow("broken")

        @flow.task
        def fails():
            raise KeyError("nope")
    """))

    completed = subprocess.run(
        [sys.executable, "-m", "flowdsl", "run", str(target), "--store", str(tmp_path / "s.db")],
        capture_output=True, text=True, timeout=60)

    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "KeyError: 'nope'" in completed.stdout


def test_a_script_that_fails_exits_non_zero_naming_the_task(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        from flowdsl import Flow

        flow = Flow("script")

        @flow.task
        def load(path="missing.csv"):
            open(path)

        flow.run()
        print("not reached")
    """))

    completed = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)

    assert completed.returncode == 1
    assert "not reached" not in completed.stdout
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("flowdsl.errors.RunFailedError: run ")
    assert ("task 'load' failed: FileNotFoundError: [Errno 2] No such file or directory: "
            "'missing.csv'") in last


# -- the seed's entry point ---------------------------------------------------------------

def _seed_flow(fail_validate: bool = False) -> Flow:
    flow = Flow("seed")

    async def load_data(task_input):
        return {"records": 10, "source": task_input["data_source"]}

    async def validate_data(task_input):
        if fail_validate:
            raise ValueError("invalid data")
        return {"valid": task_input["load_data_result"]["records"]}

    flow.add_task("load_data", "Load", load_data, context_requirements=["data_source"],
                  max_retries=0)
    flow.add_task("validate_data", "Validate", validate_data, dependencies=["load_data"],
                  max_retries=0)
    return flow


def test_execute_sequence_returns_the_runs_task_context():
    context = asyncio.run(_seed_flow().execute_sequence({"data_source": "a.csv"},
                                                         sequence_id="seq-1"))

    assert isinstance(context, TaskContext)
    assert context.task_id == "seq-1"
    assert context.get_result("validate_data") == {"valid": 10}
    assert [e["task_id"] for e in context.previous_results] == ["load_data", "validate_data"]
    summary = context.metadata["execution_summary"]
    assert summary["successful_tasks"] == 2 and summary["status"] == "succeeded"
    assert context.metadata["sequence_id"] == "seq-1"
    assert context.metadata["start_time"] <= context.metadata["end_time"]


def test_execute_sequence_does_not_raise_for_a_failed_run():
    context = asyncio.run(_seed_flow(fail_validate=True).execute_sequence({"data_source": "b"}))

    assert context.metadata["execution_summary"]["failed_tasks"] == 1
    assert context.metadata["execution_summary"]["status"] == "failed"
    failed = [e for e in context.execution_trace if e["action"] == "task_failed"]
    assert [e["task_id"] for e in failed] == ["validate_data"]
    assert failed[0]["details"]["error"] == "ValueError: invalid data"


def test_execute_sequence_takes_run_keywords(tmp_path):
    flow = _seed_flow()

    context = asyncio.run(flow.execute_sequence({"data_source": "c"}, store=tmp_path / "s.db",
                                                max_concurrency=2))

    assert context.metadata["execution_summary"]["restored_tasks"] == 0


def test_missing_output_is_not_retried_whatever_retry_on_says(run_flow, flow):
    @flow.task(produces=["rows"], retries=3, retry_wait=0, retry_on=Exception)
    def forgetful():
        return {"row": 1}

    with pytest.raises(RunFailedError) as info:
        run_flow(flow)

    task = info.value.result.tasks["forgetful"]
    assert type(task.error) is MissingOutputError
    assert task.attempts == 1
