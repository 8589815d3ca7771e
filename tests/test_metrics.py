"""The run summary and flow.get_execution_metrics(), per DESIGN.md "Summary keys"."""

import threading
import time

import pytest

import flowdsl
from flowdsl import ContextPreservationStrategy, Flow, Priority, RunStatus, TaskStatus

SUMMARY_KEYS = {
    "total_tasks", "successful_tasks", "failed_tasks", "success_rate", "total_execution_time",
    "context_preservation_overhead", "average_task_duration", "context_efficiency",
    "skipped_tasks", "cancelled_tasks", "orchestration_overhead_per_task",
}


class Boom(Exception):
    pass


def noop():
    return None


def fail():
    raise Boom("failed")


def after_fail(fail):
    return None


def _mixed_flow(name):
    flow = Flow(name)
    flow.task(id="a")(noop)
    flow.task(id="b", depends_on=["a"])(noop)
    flow.task(fail)
    flow.task(after_fail)
    return flow


def test_summary_keys_and_counts(run_flow):
    result = run_flow(_mixed_flow("mixed"), raise_on_failure=False)
    summary = result.summary

    assert SUMMARY_KEYS <= set(summary)
    assert summary["total_tasks"] == 4
    assert summary["successful_tasks"] == 2
    assert summary["failed_tasks"] == 1
    assert summary["skipped_tasks"] == 1
    assert summary["cancelled_tasks"] == 0
    assert summary["success_rate"] == pytest.approx(2 / 4)


def test_durations_sum_and_average_over_tasks_that_ran(run_flow):
    result = run_flow(_mixed_flow("durations"), raise_on_failure=False)
    summary = result.summary

    ran = [t for t in result.tasks.values()
           if t.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)]
    assert len(ran) == 3
    total = sum(t.duration for t in ran)
    assert summary["total_execution_time"] == pytest.approx(total)
    assert summary["average_task_duration"] == pytest.approx(total / 3)
    assert result.tasks["after_fail"].duration in (None, 0.0)  # a skipped task did not run
    # wall time minus handler time, per task that ran: positive (the code clamps at 0, so
    # ">= 0" could not fail) and no more than the wall time allows
    overhead = summary["orchestration_overhead_per_task"]
    assert 0.0 < overhead * 3 < summary["wall_time"]
    # the bookkeeping of each task's record counts as preservation, strategy or not
    assert 0.0 < summary["context_preservation_overhead"] < summary["wall_time"]


def test_a_run_where_every_task_completed_sums_its_tasks_times(run_flow):
    """Every task completed (the runtime sums the times as tasks complete, one at a time,
    rather than reading each task at the end): the same figures as from the tasks' own."""
    flow = Flow("all-completed")
    flow.task(id="a")(lambda: time.sleep(0.002))
    flow.task(id="b", depends_on=["a"])(lambda: time.sleep(0.001))
    flow.task(id="c", depends_on=["b"])(noop)
    result = run_flow(flow)
    summary, tasks = result.summary, list(result.tasks.values())

    assert summary["successful_tasks"] == summary["total_tasks"] == 3
    total = sum(t.duration for t in tasks)
    assert total > 0.003
    assert summary["total_execution_time"] == pytest.approx(total)
    assert summary["average_task_duration"] == pytest.approx(total / 3)
    spans = sum(t.ended_at - t.started_at for t in tasks)  # no two spans overlap here
    assert summary["orchestration_overhead_per_task"] == pytest.approx(
        (summary["wall_time"] - spans) / 3, abs=1e-6)


def test_empty_flow_summary(run_flow):
    result = run_flow(Flow("empty"))
    summary = result.summary

    assert result.status is RunStatus.SUCCEEDED
    assert summary["total_tasks"] == 0
    assert summary["success_rate"] == 1.0
    assert summary["total_execution_time"] == 0.0
    assert summary["average_task_duration"] == 0.0
    assert summary["orchestration_overhead_per_task"] == 0.0


def test_overhead_is_zero_when_no_task_ran(run_flow):
    flow = Flow("interrupted-first")

    @flow.task
    def stop():
        raise KeyboardInterrupt

    flow.task(id="later", depends_on=["stop"])(noop)

    with pytest.raises(KeyboardInterrupt) as info:
        run_flow(flow)

    summary = info.value.flowdsl_result.summary
    assert summary["cancelled_tasks"] == 2
    assert flow.get_execution_metrics()["task_status_distribution"] == {"cancelled": 2}
    assert summary["successful_tasks"] == 0 and summary["failed_tasks"] == 0
    assert summary["orchestration_overhead_per_task"] == 0.0
    assert summary["average_task_duration"] == 0.0


@pytest.mark.one_at_a_time
def test_success_rate_counts_all_planned_tasks(run_flow):
    flow = Flow("critical")
    flow.task(id="ok", priority=Priority.HIGH)(noop)
    flow.task(id="gate", priority=Priority.CRITICAL, depends_on=["ok"])(fail)
    flow.task(id="later", priority=Priority.LOW)(noop)
    flow.task(id="later2", priority=Priority.LOW)(noop)

    summary = run_flow(flow, raise_on_failure=False).summary

    assert summary["total_tasks"] == 4
    assert summary["success_rate"] == pytest.approx(1 / 4)
    assert summary["cancelled_tasks"] == 2


def test_context_efficiency_formula_counts_input_and_shared_state_keys(flow, run_flow):
    @flow.task
    def write(context):
        context.shared_state.update({"x": 1, "y": 2, "z": 3})

    initial = {f"k{i}": i for i in range(5000)}
    result = run_flow(flow, initial)

    assert result.summary["context_efficiency"] == pytest.approx(1 / (1 + 5003 / 10_000))


def test_context_efficiency_of_an_empty_context_is_one(flow, run_flow):
    flow.task(id="a")(noop)

    assert run_flow(flow).summary["context_efficiency"] == pytest.approx(1.0)


def test_duration_includes_retry_attempts(flow, run_flow):
    @flow.task(retries=2, retry_wait=0)
    def flaky():
        if flowdsl.current_task().attempt < 3:
            raise Boom("again")
        return "ok"

    result = run_flow(flow)
    task = result.tasks["flaky"]

    assert task.attempts == 3
    assert result.summary["total_execution_time"] == pytest.approx(task.duration)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_duration_includes_real_retry_waits(is_async):
    flow = Flow("waits")
    wait = 0.02

    if is_async:
        async def flaky():
            raise Boom("again")
    else:
        def flaky():
            raise Boom("again")
    flow.task(id="flaky", retries=2, retry_wait=wait)(flaky)

    result = flow.run(raise_on_failure=False)  # real sleeps: two waits of 20 ms

    task = result.tasks["flaky"]
    assert task.attempts == 3
    assert task.duration >= 2 * wait
    assert task.ended_at - task.started_at >= 2 * wait
    assert result.summary["total_execution_time"] >= 2 * wait


class SlowHooks(ContextPreservationStrategy):
    pause = 0.03

    def preserve_context(self, context, task):
        time.sleep(self.pause)

    def restore_context(self, context, task):
        time.sleep(self.pause)


def test_time_in_strategy_hooks_is_preservation_overhead_not_task_time(flow):
    flow.task(id="a")(noop)

    result = flow.run(context_strategy=SlowHooks())

    assert result.summary["context_preservation_overhead"] >= 2 * SlowHooks.pause
    assert result.tasks["a"].duration < SlowHooks.pause  # hooks are outside the task


# -- get_execution_metrics -----------------------------------------------------------------

METRIC_KEYS = {"execution_stats", "task_performance", "context_efficiency",
               "current_context_size", "task_status_distribution"}
STATS_KEYS = {"total_tasks", "successful_tasks", "failed_tasks", "total_execution_time",
              "context_preservation_overhead"}


def test_execution_metrics_keys_and_totals_across_runs(run_flow):
    flow = _mixed_flow("metrics")
    first = run_flow(flow, raise_on_failure=False)
    second = run_flow(flow, raise_on_failure=False)

    metrics = flow.get_execution_metrics()

    assert METRIC_KEYS <= set(metrics)
    stats = metrics["execution_stats"]
    assert STATS_KEYS <= set(stats)
    assert stats["total_tasks"] == 8
    assert stats["successful_tasks"] == 4
    assert stats["failed_tasks"] == 2
    assert stats["total_execution_time"] == pytest.approx(
        first.summary["total_execution_time"] + second.summary["total_execution_time"])
    assert stats["context_preservation_overhead"] == pytest.approx(
        first.summary["context_preservation_overhead"]
        + second.summary["context_preservation_overhead"])
    assert metrics["task_status_distribution"] == {"completed": 2, "failed": 1, "skipped": 1}
    assert metrics["context_efficiency"] == second.summary["context_efficiency"]


def test_execution_metrics_keep_the_last_ten_durations_per_task(flow, run_flow):
    flow.task(id="a")(noop)
    flow.task(id="b", depends_on=["a"])(noop)

    durations = {"a": [], "b": []}
    for _ in range(12):
        result = run_flow(flow)
        for task_id in durations:
            durations[task_id].append(result.tasks[task_id].duration)

    performance = flow.get_execution_metrics()["task_performance"]

    assert performance["a"] == pytest.approx(durations["a"][-10:])
    assert performance["b"] == pytest.approx(durations["b"][-10:])
    assert len(performance["a"]) == 10


def test_execution_metrics_context_size_is_the_last_runs(flow, run_flow):
    @flow.task
    def write(context, n):
        for i in range(n):
            context.shared_state[f"s{i}"] = i

    run_flow(flow, {"n": 5})
    run_flow(flow, {"n": 2, "extra": 1})

    metrics = flow.get_execution_metrics()
    assert metrics["current_context_size"] == 2 + 2  # two inputs + two shared-state keys
    assert metrics["context_efficiency"] == pytest.approx(1 / (1 + 4 / 10_000))


def test_execution_metrics_of_a_flow_that_never_ran():
    flow = Flow("never")
    flow.task(id="a")(noop)

    metrics = flow.get_execution_metrics()

    assert METRIC_KEYS <= set(metrics)
    assert metrics["execution_stats"]["total_tasks"] == 0
    assert metrics["task_performance"] == {}


def test_metrics_of_two_flows_are_independent(run_flow):
    one, two = Flow("one"), Flow("two")
    one.task(id="a")(noop)
    two.task(id="b")(noop)

    run_flow(one)

    assert one.get_execution_metrics()["execution_stats"]["total_tasks"] == 1
    assert two.get_execution_metrics()["execution_stats"]["total_tasks"] == 0


def test_execution_totals_count_every_run_also_runs_in_threads():
    flow = Flow("totals-from-threads")
    flow.task(id="a")(noop)
    flow.task(id="b", depends_on=["a"])(noop)

    def runs(count):
        for _ in range(count):
            flow.run()

    threads = [threading.Thread(target=runs, args=(60,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs(3)  # 243 runs: several batches of summaries folded, some not yet

    stats = flow.get_execution_metrics()["execution_stats"]
    assert stats["total_tasks"] == stats["successful_tasks"] == 2 * 243
    assert stats["failed_tasks"] == 0
    flow.run()
    assert flow.get_execution_metrics()["execution_stats"]["total_tasks"] == 2 * 244
