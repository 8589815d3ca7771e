"""Property tests: random DAGs of tasks with random triggers, `run_if` outcomes (none, true,
false, raising) and failing handlers, against a reference computed here from DESIGN.md's
rules ("Conditions and trigger rules"), sequentially and concurrently."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdsl import ConcurrentExecutor, Flow, RunStatus, SequentialExecutor, TaskStatus

COMPLETED, FAILED, SKIPPED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED
TRIGGERS = ("all_succeeded", "none_failed", "all_done")
CONDITIONS = (None, True, False, "raises")


class Injected(Exception):
    pass


@st.composite
def dags(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=9))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        tasks.append({
            "id": f"t{i}",
            "deps": tuple(f"t{d}" for d in deps),
            "trigger": draw(st.sampled_from(TRIGGERS)),
            "condition": draw(st.sampled_from(CONDITIONS)),
            "fails": draw(st.booleans()),
        })
    return tasks


def build(tasks: list[dict[str, Any]]) -> Flow:
    flow = Flow("conditions-properties")
    for task in tasks:
        flow.task(id=task["id"], depends_on=list(task["deps"]), trigger=task["trigger"],
                  run_if=predicate(task))(handler(task))
    return flow


def handler(task: dict[str, Any]) -> Any:
    def run(task_input: dict[str, Any]) -> str:
        if task["fails"]:
            raise Injected(task["id"])
        return f"{task['id']}(" + ",".join(
            task_input.get(f"{d}_result", "-") for d in task["deps"]) + ")"
    return run


def predicate(task: dict[str, Any]) -> Any:
    condition = task["condition"]
    if condition is None:
        return None
    if condition == "raises":
        def raising() -> bool:
            raise Injected(f"{task['id']}'s predicate")
        return raising
    return lambda: condition


def reference(tasks: list[dict[str, Any]]) -> tuple[dict[str, TaskStatus], dict[str, str]]:
    """Statuses and results by the rules (tasks are in a topological order)."""
    status: dict[str, TaskStatus] = {}
    results: dict[str, str] = {}
    ancestors: dict[str, set[str]] = {}
    for task in tasks:
        task_id, deps = task["id"], task["deps"]
        ancestors[task_id] = set(deps).union(*(ancestors[d] for d in deps))
        trigger = task["trigger"]
        if trigger == "all_succeeded" and any(status[d] is not COMPLETED for d in deps):
            status[task_id] = SKIPPED
        elif trigger == "none_failed" and any(status[a] is FAILED for a in ancestors[task_id]):
            status[task_id] = SKIPPED
        elif task["condition"] is False:
            status[task_id] = SKIPPED
        elif task["condition"] == "raises" or task["fails"]:
            status[task_id] = FAILED
        else:
            status[task_id] = COMPLETED
            results[task_id] = f"{task_id}(" + ",".join(results.get(d, "-") for d in deps) + ")"
    return status, results


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.sampled_from(["sequential", "concurrent"]))
def test_statuses_and_results_follow_the_rules(tasks: list[dict[str, Any]],
                                               executor: str) -> None:
    expected_status, expected_results = reference(tasks)
    runner = SequentialExecutor() if executor == "sequential" else ConcurrentExecutor(3)

    result = build(tasks).run(executor=runner, raise_on_failure=False)

    assert {t: task.status for t, task in result.tasks.items()} == expected_status
    assert dict(result.results) == expected_results
    failed = FAILED in expected_status.values()
    assert result.status is (RunStatus.FAILED if failed else RunStatus.SUCCEEDED)
    for task in tasks:
        run = result.tasks[task["id"]]
        if run.status is SKIPPED and task["condition"] is False and not run.reason.startswith(
                "upstream"):
            assert run.reason == "condition false"
        if run.status is FAILED:
            assert isinstance(run.error, Injected)
            assert run.attempts == (0 if task["condition"] == "raises" else 1)
    summary = result.summary
    assert summary["skipped_tasks"] == sum(s is SKIPPED for s in expected_status.values())
    assert summary["failed_tasks"] == sum(s is FAILED for s in expected_status.values())
    assert sorted(e["task_id"] for e in result.context.previous_results) == sorted(
        expected_results)
