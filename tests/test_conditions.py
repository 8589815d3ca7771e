"""Conditions and trigger rules at run time (DESIGN, "Conditions and trigger rules"): `run_if`
evaluated once when a task is ready, and `trigger=` all_succeeded / none_failed / all_done,
under every executor (`run_flow`)."""

from __future__ import annotations

from typing import Any

import pytest

from flowdsl import DefinitionError, Flow, Priority, RunFailedError, RunStatus, TaskStatus

COMPLETED, FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED
SKIPPED, CANCELLED = TaskStatus.SKIPPED, TaskStatus.CANCELLED


def statuses(result: Any) -> dict[str, TaskStatus]:
    return {task_id: task.status for task_id, task in result.tasks.items()}


def branching(flow: Flow) -> Flow:
    """choose -> (small | large, each gated by run_if) -> join (none_failed) -> tidy (all_done);
    ``after_large`` reads the large branch with the default trigger."""

    @flow.task
    def choose(size: int) -> str:
        return "small" if size < 10 else "large"

    @flow.task(run_if=lambda choose: choose == "small")
    def small(size: int) -> str:
        return f"small:{size}"

    @flow.task(run_if=lambda choose: choose == "large")
    def large(size: int) -> str:
        return f"large:{size}"

    @flow.task
    def after_large(large: str) -> str:
        return large.upper()

    @flow.task(trigger="none_failed")
    def join(small: Any = "no small", large: Any = None) -> tuple[Any, Any]:
        return small, large

    @flow.task(trigger="all_done", depends_on=["join"])
    def tidy() -> str:
        return "tidied"

    return flow


# == run_if ====================================================================================
def test_a_false_condition_skips_the_task_and_its_downstream_and_the_run_succeeds(
        run_flow: Any, flow: Flow) -> None:
    result = run_flow(branching(flow), {"size": 3})

    assert result.status is RunStatus.SUCCEEDED
    assert statuses(result) == {"choose": COMPLETED, "small": COMPLETED, "large": SKIPPED,
                                "after_large": SKIPPED, "join": COMPLETED, "tidy": COMPLETED}
    assert result.tasks["large"].reason == "condition false"
    assert result.tasks["large"].attempts == 0
    reason = result.tasks["after_large"].reason
    assert "'large'" in reason and "skipped" in reason and "condition false" in reason
    # the join ran with the default of the skipped branch; no value for skipped tasks
    assert result.results["join"] == ("small:3", None)
    assert "large" not in result.results and "after_large" not in result.results
    assert result.summary["skipped_tasks"] == 2 and result.summary["failed_tasks"] == 0
    assert result.summary["successful_tasks"] == 4
    result.raise_for_status()  # SUCCEEDED: nothing to raise


def test_the_other_branch_runs_when_its_condition_holds(run_flow: Any, flow: Flow) -> None:
    result = run_flow(branching(flow), {"size": 30})

    assert result.status is RunStatus.SUCCEEDED
    assert statuses(result)["small"] is SKIPPED and statuses(result)["large"] is COMPLETED
    assert result.results["after_large"] == "LARGE:30"
    assert result.results["join"] == ("no small", "large:30")  # the parameter's own default


def test_a_condition_false_task_keeps_no_record_and_is_traced_as_skipped(
        run_flow: Any, flow: Flow) -> None:
    result = run_flow(branching(flow), {"size": 3})
    context = result.context

    assert "large" not in context.records and "small" in context.records
    assert [e["task_id"] for e in context.previous_results] == ["choose", "small", "join", "tidy"]
    skipped = {e["task_id"]: e["details"]["reason"] for e in context.execution_trace
               if e["action"] == "task_skipped"}
    assert skipped["large"] == "condition false"
    assert "'large'" in skipped["after_large"]


@pytest.mark.in_process
def test_the_predicate_is_evaluated_once_when_the_task_is_ready(run_flow: Any,
                                                                 flow: Flow) -> None:
    seen: list[tuple[str, Any]] = []

    @flow.task
    def load() -> list[int]:
        seen.append(("load ran", None))
        return [1, 2, 3]

    def enough(load: list[int], threshold: int) -> bool:
        seen.append(("predicate", list(load)))
        return len(load) >= threshold

    @flow.task(run_if=enough, retries=2, retry_wait=0)
    def publish(load: list[int]) -> int:
        seen.append(("publish ran", None))
        if len(seen) < 4:
            raise RuntimeError("first attempt fails")
        return sum(load)

    result = run_flow(flow, {"threshold": 2})

    assert result.results["publish"] == 6 and result.tasks["publish"].attempts == 2
    # once, after its upstream completed, before the first attempt (retries do not re-ask)
    assert seen == [("load ran", None), ("predicate", [1, 2, 3]), ("publish ran", None),
                    ("publish ran", None)]
    assert flow.compile()["publish"].dependencies == ("load",)


def test_a_predicate_reading_only_context_keys_gates_a_root_task(run_flow: Any,
                                                                 flow: Flow) -> None:
    @flow.task(run_if=lambda enabled: enabled)
    def notify(channel: str) -> str:
        return f"sent to {channel}"

    @flow.task
    def audit(notify: str) -> str:
        return notify

    on = run_flow(flow, {"enabled": True, "channel": "ops"})
    off = run_flow(flow, {"enabled": False, "channel": "ops"})

    assert on.results["audit"] == "sent to ops"
    assert statuses(off) == {"notify": SKIPPED, "audit": SKIPPED}
    assert off.status is RunStatus.SUCCEEDED
    assert "enabled" in flow.compile().inputs


class Unlucky(Exception):
    pass


def test_a_predicate_that_raises_fails_the_task_unretried_and_never_calls_the_handler(
        run_flow: Any, flow: Flow) -> None:
    def predicate(load: int) -> bool:
        raise Unlucky(f"cannot decide on {load}")

    @flow.task
    def load() -> int:
        return 7

    @flow.task(run_if=predicate, retries=3, retry_wait=0)
    def publish(load: int) -> int:
        raise AssertionError("the handler must not be called")

    @flow.task
    def after(publish: int) -> int:
        return publish

    @flow.task
    def independent() -> str:
        return "ran"

    with pytest.raises(RunFailedError) as excinfo:
        run_flow(flow)
    result = excinfo.value.result

    task = result.tasks["publish"]
    assert task.status is FAILED and task.attempts == 0
    assert type(task.error) is Unlucky and str(task.error) == "cannot decide on 7"
    assert isinstance(excinfo.value.__cause__, Unlucky)
    assert statuses(result) == {"load": COMPLETED, "publish": FAILED, "after": SKIPPED,
                                "independent": COMPLETED}
    assert "'publish'" in result.tasks["after"].reason
    assert result.summary["failed_tasks"] == 1
    failed = [e for e in result.context.execution_trace if e["action"] == "task_failed"]
    assert [e["task_id"] for e in failed] == ["publish"]
    assert not [e for e in result.context.execution_trace if e["action"] == "task_retry"]
    assert "publish" not in result.context.records


@pytest.mark.in_process
def test_a_predicate_that_raises_keeps_the_exception_object_as_raised(run_flow: Any,
                                                                       flow: Flow) -> None:
    error = Unlucky("this one")

    def predicate() -> bool:
        raise error

    flow.task(id="gated", run_if=predicate)(lambda: 1)
    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["gated"].error is error


@pytest.mark.one_at_a_time
def test_a_critical_task_whose_predicate_raises_stops_the_run(run_flow: Any,
                                                              flow: Flow) -> None:
    flow.task(id="gated", priority=Priority.CRITICAL, run_if=lambda: 1 / 0)(lambda: 1)
    flow.task(id="later", priority=Priority.LOW)(lambda: 2)

    result = run_flow(flow, raise_on_failure=False)

    assert statuses(result) == {"gated": FAILED, "later": CANCELLED}
    assert isinstance(result.tasks["gated"].error, ZeroDivisionError)
    assert "'gated'" in result.tasks["later"].reason


def test_an_async_predicate_is_a_definition_error(flow: Flow) -> None:
    async def ready() -> bool:
        return True

    with pytest.raises(DefinitionError, match=r"'publish'.*run_if.*async"):
        flow.task(id="publish", run_if=ready)(lambda: 1)


def test_a_predicate_returning_an_awaitable_fails_the_task(run_flow: Any, flow: Flow) -> None:
    async def later() -> bool:
        return True

    flow.task(id="gated", run_if=lambda: later())(lambda: 1)
    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["gated"].status is FAILED
    assert isinstance(result.tasks["gated"].error, TypeError)
    assert "awaitable" in str(result.tasks["gated"].error)


def test_conditions_gate_async_handlers_too(run_flow: Any, flow: Flow) -> None:
    @flow.task
    async def fetch() -> int:
        return 5

    @flow.task(run_if=lambda fetch: fetch > 10)
    async def big(fetch: int) -> str:
        return "big"

    @flow.task(run_if=lambda fetch: fetch <= 10)
    async def small(fetch: int) -> str:
        return "small"

    result = run_flow(flow)

    assert statuses(result) == {"fetch": COMPLETED, "big": SKIPPED, "small": COMPLETED}
    assert result.results["small"] == "small"


# == trigger rules ============================================================================
def failing(flow: Flow) -> Flow:
    """extract -> transform (fails) -> load; plus readers of transform's result and key."""

    @flow.task
    def extract() -> int:
        return 1

    @flow.task(produces=["rows"])
    def transform(extract: int) -> dict[str, Any]:
        raise ValueError("bad rows")

    @flow.task
    def load(transform: Any) -> Any:
        return transform

    return flow


def test_all_succeeded_skips_naming_the_failed_upstream(run_flow: Any, flow: Flow) -> None:
    result = run_flow(failing(flow), raise_on_failure=False)

    assert statuses(result) == {"extract": COMPLETED, "transform": FAILED, "load": SKIPPED}
    assert result.tasks["load"].reason == "upstream task 'transform' failed"


def test_all_done_runs_after_a_failure_with_defaults_for_what_did_not_complete(
        run_flow: Any, flow: Flow) -> None:
    failing(flow)

    @flow.task(trigger="all_done")
    def cleanup(extract: int, transform: Any, rows: str = "no rows") -> tuple[Any, ...]:
        return extract, transform, rows

    @flow.task
    def report(cleanup: Any) -> Any:
        return cleanup

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED  # the failure still fails the run
    assert statuses(result)["cleanup"] is COMPLETED
    assert result.results["cleanup"] == (1, None, "no rows")
    assert result.results["report"] == (1, None, "no rows")  # downstream of it runs as usual


def test_all_done_runs_after_skipped_dependencies(run_flow: Any, flow: Flow) -> None:
    failing(flow)

    @flow.task(trigger="all_done")
    def cleanup(load: Any = "nothing loaded") -> Any:
        return load

    result = run_flow(flow, raise_on_failure=False)

    assert statuses(result)["load"] is SKIPPED
    assert result.results["cleanup"] == "nothing loaded"


def test_none_failed_is_skipped_naming_a_failed_ancestor_behind_a_skip(run_flow: Any,
                                                                       flow: Flow) -> None:
    failing(flow)

    @flow.task(trigger="none_failed")
    def join(load: Any = None) -> Any:
        return load

    result = run_flow(flow, raise_on_failure=False)

    assert statuses(result)["join"] is SKIPPED
    assert result.tasks["join"].reason == "upstream task 'transform' failed"


def test_none_failed_sees_a_failed_ancestor_behind_a_task_that_ran_anyway(
        run_flow: Any, flow: Flow) -> None:
    failing(flow)

    @flow.task(trigger="all_done", depends_on=["transform"])
    def cleanup() -> str:
        return "clean"

    @flow.task(trigger="none_failed")
    def notify(cleanup: str) -> str:
        return cleanup

    result = run_flow(flow, raise_on_failure=False)

    assert statuses(result)["cleanup"] is COMPLETED
    assert statuses(result)["notify"] is SKIPPED
    assert "'transform'" in result.tasks["notify"].reason


def test_none_failed_runs_when_every_dependency_completed(run_flow: Any, flow: Flow) -> None:
    flow.task(id="a")(lambda: 1)
    flow.task(id="b", trigger="none_failed")(lambda a: a + 1)
    result = run_flow(flow)
    assert result.results["b"] == 2


def test_a_context_key_from_a_producer_that_did_not_complete_gets_the_default(
        run_flow: Any, flow: Flow) -> None:
    @flow.task(produces=["mode"], run_if=lambda: False)
    def configure() -> dict[str, str]:
        return {"mode": "fast"}

    @flow.task(trigger="none_failed")
    def work(mode: str = "safe") -> str:
        return mode

    @flow.task(trigger="none_failed", requires=["mode"])
    def strict(mode: Any) -> Any:
        return mode

    result = run_flow(flow)

    assert result.results["work"] == "safe"
    assert result.results["strict"] is None  # no default: None


def test_a_trigger_and_a_condition_together_trigger_first(run_flow: Any, flow: Flow) -> None:
    failing(flow)

    def wanted(load: Any = None) -> bool:
        return load is None

    @flow.task(trigger="all_done", run_if=wanted)
    def fallback(load: Any = None) -> str:
        return "fallback"

    @flow.task(trigger="none_failed", run_if=wanted)
    def never(load: Any = None) -> str:
        return "never"

    result = run_flow(flow, raise_on_failure=False)

    assert result.results["fallback"] == "fallback"  # ran: all_done, then the predicate
    assert statuses(result)["never"] is SKIPPED
    assert result.tasks["never"].reason == "upstream task 'transform' failed"


@pytest.mark.one_at_a_time
def test_a_cancelled_dependency_cancels_the_task_whatever_its_trigger(run_flow: Any,
                                                                      flow: Flow) -> None:
    def stop() -> None:
        raise RuntimeError("stop")

    flow.task(id="critical", priority=Priority.CRITICAL)(stop)
    flow.task(id="work", priority=Priority.LOW)(lambda: 1)
    flow.task(id="cleanup", trigger="all_done", depends_on=["work"])(lambda: 2)

    result = run_flow(flow, raise_on_failure=False)

    assert statuses(result) == {"critical": FAILED, "work": CANCELLED, "cleanup": CANCELLED}


# == sub-flows ================================================================================
def test_a_sub_flow_with_a_branch_not_taken_still_gathers(run_flow: Any, flow: Flow) -> None:
    sub = Flow("sub")
    sub.task(id="size")(lambda data: len(data))
    sub.task(id="big", run_if=lambda size: size > 2)(lambda size: f"big {size}")
    sub.task(id="small", run_if=lambda size: size <= 2)(lambda size: f"small {size}")
    flow.include(sub, prefix="one", inputs={"data": "key:first"})
    flow.include(sub, prefix="two", inputs={"data": "key:second"})
    flow.task(id="report")(lambda one, two: (one, two))

    result = run_flow(flow, {"first": [1], "second": [1, 2, 3]})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["one.big"].reason == "condition false"
    assert result.results["report"] == ({"big": None, "small": "small 1"},
                                        {"big": "big 3", "small": None})
    assert flow.compile()["one"].trigger == "none_failed"


def test_a_join_waits_for_every_dependency_after_roots_skipped_by_their_condition(
        run_flow: Any, flow: Flow) -> None:
    flow.task(id="gated", run_if=lambda: False)(lambda: "gated")
    flow.task(id="after_gated", depends_on=["gated"])(lambda: "after")
    flow.task(id="other")(lambda: "other")

    @flow.task(trigger="none_failed")
    def join(gated: str = "-", after_gated: str = "-", other: str = "missing") -> str:
        return f"{gated} {after_gated} {other}"

    result = run_flow(flow)

    assert result.results["join"] == "- - other"  # it ran once `other` had completed


def test_hooks_a_predicate_failure_fires_on_failure_a_branch_not_taken_fires_none(
        run_flow: Any, flow: Flow) -> None:
    seen: list[tuple[str, str, str]] = []  # hooks run on the driver, also on Dask

    def hook(event: Any) -> None:
        seen.append((event.task_id, event.status.value, type(event.error).__name__))

    flow.task(id="raising", run_if=lambda: 1 / 0, on_failure=hook, on_success=hook)(lambda: 1)
    flow.task(id="not_taken", run_if=lambda: False, on_failure=hook,
              on_success=hook)(lambda: 2)
    flow.task(id="taken", run_if=lambda: True, on_failure=hook, on_success=hook)(lambda: 3)

    run_flow(flow, raise_on_failure=False)

    assert sorted(seen) == [("raising", "failed", "ZeroDivisionError"),
                            ("taken", "completed", "NoneType")]


def test_predicates_run_on_the_driver_so_they_need_not_pickle(run_flow: Any,
                                                             flow: Flow) -> None:
    import threading

    lock = threading.Lock()  # cannot be pickled: a predicate sent to a Dask worker would fail

    def unlocked() -> bool:
        with lock:
            return True

    flow.task(id="guarded", run_if=unlocked)(lambda: "ran")
    assert run_flow(flow).results["guarded"] == "ran"


def test_all_done_waits_for_every_dependency_not_only_the_failed_one(run_flow: Any,
                                                                     flow: Flow) -> None:
    def fails() -> None:
        raise ValueError("fast failure")

    def slow() -> int:
        return sum(range(200_000))  # still running when `fast` has failed, at N > 1

    flow.task(id="fast")(fails)
    flow.task(id="slow")(slow)
    flow.task(id="cleanup", trigger="all_done")(lambda fast, slow: (fast, slow))

    result = run_flow(flow, raise_on_failure=False)

    assert result.results["cleanup"] == (None, sum(range(200_000)))
    assert result.tasks["cleanup"].started_at >= result.tasks["slow"].ended_at
