"""Property tests: random DAGs with failures injected on chosen attempts, against a reference
computed here from DESIGN.md's rules (retries, SKIPPED downstream of a failure)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowdsl
from flowdsl import Flow, Priority, RunStatus, TaskStatus


class Injected(Exception):
    pass


def make_handler(task_id, deps, fail_on, is_async):
    """A handler that fails on the attempts in ``fail_on`` and otherwise returns a string
    built from its upstream results."""

    def body(task_input):
        attempt = flowdsl.current_task().attempt
        if attempt in fail_on:
            raise Injected(f"{task_id} attempt {attempt}")
        return f"{task_id}(" + ",".join(task_input[f"{d}_result"] for d in deps) + ")"

    if is_async:
        async def handler(task_input):
            return body(task_input)
    else:
        def handler(task_input):
            return body(task_input)
    return handler


@st.composite
def dags(draw):
    n = draw(st.integers(min_value=1, max_value=8))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        tasks.append({
            "id": f"t{i}",
            "deps": tuple(f"t{d}" for d in deps),
            "retries": draw(st.integers(0, 2)),
            "fail_on": draw(st.frozensets(st.integers(1, 3), max_size=3)),
            "priority": draw(st.sampled_from([Priority.HIGH, Priority.NORMAL, Priority.LOW])),
            "is_async": draw(st.booleans()),
        })
    return tasks


def reference(tasks):
    """Statuses, attempts and results by DESIGN.md's rules (tasks are in a topological order)."""
    status, attempts, results = {}, {}, {}
    for task in tasks:
        task_id = task["id"]
        if any(status[d] in (TaskStatus.FAILED, TaskStatus.SKIPPED) for d in task["deps"]):
            status[task_id], attempts[task_id] = TaskStatus.SKIPPED, 0
            continue
        good = [a for a in range(1, task["retries"] + 2) if a not in task["fail_on"]]
        if good:
            status[task_id], attempts[task_id] = TaskStatus.COMPLETED, good[0]
            results[task_id] = f"{task_id}(" + ",".join(results[d] for d in task["deps"]) + ")"
        else:
            status[task_id], attempts[task_id] = TaskStatus.FAILED, task["retries"] + 1
    return status, attempts, results


def descendants(tasks, root):
    children = {}
    for task in tasks:
        for dep in task["deps"]:
            children.setdefault(dep, []).append(task["id"])
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tasks=dags())
def test_random_dags_with_injected_failures(run_flow, tasks):
    flow = Flow("random")
    for task in tasks:
        handler = make_handler(task["id"], task["deps"], task["fail_on"], task["is_async"])
        flow.task(id=task["id"], depends_on=list(task["deps"]), retries=task["retries"],
                  retry_wait=0, priority=task["priority"])(handler)

    result = run_flow(flow, raise_on_failure=False)

    by_id = {task["id"]: task for task in tasks}
    status, attempts, results = reference(tasks)
    # each task runs at most retries + 1 times
    for task_id, task_run in result.tasks.items():
        assert 0 <= task_run.attempts <= by_id[task_id]["retries"] + 1
        retries_traced = [e for e in result.context.execution_trace
                          if e["task_id"] == task_id and e["action"] == "task_retry"]
        assert len(retries_traced) == max(task_run.attempts - 1, 0)
    # every task downstream of a FAILED task is SKIPPED
    for task_id, task_run in result.tasks.items():
        if task_run.status is TaskStatus.FAILED:
            for below in descendants(tasks, task_id):
                assert result.tasks[below].status is TaskStatus.SKIPPED
    # the reference
    assert {t: r.status for t, r in result.tasks.items()} == status
    assert {t: r.attempts for t, r in result.tasks.items()} == attempts
    assert result.results == results
    for task_run in result.tasks.values():
        if task_run.status is TaskStatus.FAILED:
            assert type(task_run.error) is Injected
    # summary counts add up
    summary = result.summary
    assert summary["total_tasks"] == len(tasks)
    assert (summary["successful_tasks"] + summary["failed_tasks"] + summary["skipped_tasks"]
            + summary["cancelled_tasks"]) == summary["total_tasks"]
    assert summary["successful_tasks"] == len(results)
    assert summary["cancelled_tasks"] == 0  # no critical task here
    failed = any(s is TaskStatus.FAILED for s in status.values())
    assert result.status is (RunStatus.FAILED if failed else RunStatus.SUCCEEDED)
    assert sorted(e["task_id"] for e in result.context.previous_results) == sorted(results)
