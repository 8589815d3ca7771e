"""The runtime as a user sees it: results, statuses, the RunResult, sync and async driving,
what a handler receives, and the events observers get."""

import asyncio
import re
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest

import flowdsl
from flowdsl import (
    FlowError,
    Priority,
    RunFailedError,
    RunFinished,
    RunResult,
    RunStarted,
    RunStatus,
    TaskContext,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
    TaskStatus,
)


class Boom(Exception):
    pass


# -- module-level handlers (picklable for distributed executors) ---------------------------

def source():
    return 2


def double(source):
    return source * 2


async def async_double(source):
    await asyncio.sleep(0)
    return source * 2


def add_one(double):
    return double + 1


def explode():
    raise Boom("explode failed")


def explode_later():
    raise Boom("second failure")


# -- results and statuses --------------------------------------------------------------------

def test_results_and_statuses_of_a_successful_run(flow, run_flow):
    flow.task(source)
    flow.task(double)
    flow.task(add_one)

    result = run_flow(flow)

    assert isinstance(result, RunResult)
    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"source": 2, "double": 4, "add_one": 5}
    assert set(result.tasks) == {"source", "double", "add_one"}
    for task in result.tasks.values():
        assert task.status is TaskStatus.COMPLETED
        assert task.attempts == 1
        assert task.error is None
        assert task.reason is None
        assert task.started_at <= task.ended_at
        assert task.duration == pytest.approx(task.ended_at - task.started_at, abs=1e-6)
    assert isinstance(result.context, TaskContext)
    assert isinstance(result.summary, dict)
    assert result.summary["successful_tasks"] == 3
    result.raise_for_status()  # does not raise


def test_results_of_sync_and_async_handlers_are_their_return_values(flow, run_flow):
    flow.task(source)
    flow.task(id="double")(async_double)

    @flow.task
    def add_one(double):  # a sync task reading an async task's result
        return double + 1

    @flow.task
    async def both(double, add_one):
        return (double, add_one)

    result = run_flow(flow)

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"source": 2, "double": 4, "add_one": 5, "both": (4, 5)}


@pytest.mark.in_process
def test_result_objects_are_the_returned_objects(flow, run_flow):
    @flow.task
    def make():
        return {"rows": [1, 2, 3]}

    @flow.task
    def same(make):
        return make

    result = run_flow(flow)

    assert result.results["same"] is result.results["make"]
    assert result.results["make"] == {"rows": [1, 2, 3]}


def test_task_run_times_are_epoch_floats_framing_the_duration(flow, run_flow):
    flow.task(source)
    flow.task(double)
    before = time.time()
    result = run_flow(flow)
    after = time.time()

    previous_end = None
    for task_id in ("source", "double"):
        task = result.tasks[task_id]
        assert isinstance(task.started_at, float) and isinstance(task.ended_at, float)
        assert before - 0.01 <= task.started_at <= task.ended_at <= after + 0.01
        assert task.ended_at - task.started_at == pytest.approx(task.duration, abs=1e-3)
        if previous_end is not None:  # a chain: the second starts after the first ends
            assert task.started_at >= previous_end - 1e-3
        previous_end = task.ended_at


# -- raise_for_status ------------------------------------------------------------------------

def test_raise_for_status_chains_to_the_failing_tasks_own_exception(flow, run_flow):
    flow.task(source)
    flow.task(explode)
    flow.task(double)

    with pytest.raises(RunFailedError) as info:
        run_flow(flow)

    error = info.value
    result = error.result
    assert result.status is RunStatus.FAILED
    assert isinstance(error, FlowError) and isinstance(error, RuntimeError)
    cause = error.__cause__
    assert cause is result.tasks["explode"].error
    assert type(cause) is Boom  # the handler's own exception, not a wrapper
    assert cause.args == ("explode failed",)
    assert "explode" in str(error)


@pytest.mark.one_at_a_time
def test_raise_for_status_chains_to_the_first_failure_in_time(flow, run_flow):
    flow.task(priority=Priority.HIGH)(explode)
    flow.task(priority=Priority.LOW)(explode_later)

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    first = result.tasks["explode"]
    second = result.tasks["explode_later"]
    assert first.ended_at <= second.started_at + 1e-3
    with pytest.raises(RunFailedError) as info:
        result.raise_for_status()
    assert info.value.__cause__ is first.error
    assert info.value.__cause__.args == ("explode failed",)


def test_handler_exception_is_stored_as_raised_identity(flow):
    raised = Boom("the very same")

    @flow.task
    def fails():
        raise raised

    with pytest.raises(RunFailedError) as info:
        flow.run()

    assert info.value.result.tasks["fails"].error is raised
    assert info.value.__cause__ is raised
    with pytest.raises(RunFailedError) as again:
        info.value.result.raise_for_status()
    assert again.value.__cause__ is raised and again.value.result is info.value.result


def test_missing_input_raises_before_any_task_starts(flow, run_flow):
    started = []

    @flow.task
    def first():
        started.append("first")

    @flow.task
    def reader(first, table):
        started.append("reader")

    with pytest.raises(flowdsl.MissingInputError) as info:
        run_flow(flow, {"other": 1})

    assert started == []
    assert isinstance(info.value, LookupError)
    assert "table" in str(info.value) and "reader" in str(info.value)


# -- run ids ---------------------------------------------------------------------------------

def test_run_ids_sort_by_start_time(flow, run_flow):
    flow.task(source)
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    ids = [run_flow(flow).run_id for _ in range(25)]
    after = datetime.now(timezone.utc).replace(tzinfo=None)

    assert all(re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{6}", run_id) for run_id in ids), ids
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    started = [datetime.strptime(run_id[:21], "%Y%m%dT%H%M%S%f") for run_id in ids]
    assert before - timedelta(seconds=1) <= started[0] <= started[-1] <= after  # UTC, to the µs


def test_custom_run_id_is_used_everywhere(flow, run_flow):
    @flow.task
    def key(task_input):
        return task_input["idempotency_key"]

    result = run_flow(flow, run_id="nightly-2024-01-01")

    assert result.run_id == "nightly-2024-01-01"
    assert result.context.task_id == "nightly-2024-01-01"
    assert result.results["key"] == "nightly-2024-01-01:key"


# -- sync and async driving (about flow.run / flow.arun themselves) ------------------------

def test_pure_sync_flow_runs_in_callers_thread_without_event_loop(flow, monkeypatch):
    seen = {}

    @flow.task
    def probe():
        seen["thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen["loop"] = None
        else:
            seen["loop"] = "running"
        return 1

    @flow.task
    def after(probe):
        return probe + 1

    def no_loop(*args, **kwargs):
        raise AssertionError("a sync flow created an event loop")

    monkeypatch.setattr(asyncio, "new_event_loop", no_loop)
    monkeypatch.setattr(asyncio, "run", no_loop)

    result = flow.run()

    assert result.status is RunStatus.SUCCEEDED
    assert seen["thread"] == threading.get_ident()
    assert seen["loop"] is None


def test_sync_flow_inside_a_running_loop_runs_inline(flow):
    seen = {}

    @flow.task
    def probe():
        seen["thread"] = threading.get_ident()
        return "ok"

    async def main():
        seen["caller"] = threading.get_ident()
        return flow.run()

    result = asyncio.run(main())

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"probe": "ok"}
    assert seen["thread"] == seen["caller"]


def test_async_flow_run_from_inside_a_running_loop_uses_a_private_loop(flow):
    seen = {}

    @flow.task
    async def probe():
        await asyncio.sleep(0)
        seen["loop"] = asyncio.get_running_loop()
        seen["thread"] = threading.get_ident()
        return "async ok"

    @flow.task
    def after(probe):
        return probe.upper()

    async def main():
        seen["outer"] = asyncio.get_running_loop()
        seen["caller"] = threading.get_ident()
        return flow.run()

    result = asyncio.run(main())

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"probe": "async ok", "after": "ASYNC OK"}
    assert seen["loop"] is not seen["outer"]
    assert seen["thread"] != seen["caller"]  # a helper thread drives the private loop


def test_async_tasks_of_one_run_share_one_loop(flow):
    loops = []

    @flow.task
    async def first():
        loops.append(asyncio.get_running_loop())

    @flow.task
    async def second(first):
        loops.append(asyncio.get_running_loop())

    @flow.task
    async def third(second):
        loops.append(asyncio.get_running_loop())

    flow.run()

    assert len(loops) == 3 and loops[0] is loops[1] is loops[2]


def test_async_flow_run_from_sync_code(flow):
    @flow.task
    async def probe():
        await asyncio.sleep(0)
        return 42

    result = flow.run()

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"probe": 42}


def test_arun_is_awaitable_and_runs_on_the_callers_loop(flow):
    seen = {}

    @flow.task
    async def probe(x):
        seen["loop"] = asyncio.get_running_loop()
        return x + 1

    @flow.task
    def sync_after(probe):
        return probe * 10

    async def main():
        seen["outer"] = asyncio.get_running_loop()
        return await flow.arun({"x": 1})

    result = asyncio.run(main())

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"probe": 2, "sync_after": 20}
    assert seen["loop"] is seen["outer"]


def test_arun_reports_failures_like_run(flow):
    flow.task(explode)

    with pytest.raises(RunFailedError) as info:
        asyncio.run(flow.arun())

    assert info.value.result.status is RunStatus.FAILED
    assert type(info.value.__cause__) is Boom
    assert info.value.__cause__ is info.value.result.tasks["explode"].error
    assert asyncio.run(flow.arun(raise_on_failure=False)).status is RunStatus.FAILED


# -- what handlers receive ----------------------------------------------------------------

@pytest.mark.in_process
def test_context_parameter_and_annotation_receive_the_live_context(flow, run_flow):
    seen = {}

    @flow.task
    def by_name(context):
        seen["by_name"] = context
        return 1

    @flow.task
    def by_annotation(ctx: TaskContext):
        seen["by_annotation"] = ctx
        return 2

    @flow.task
    def by_string_annotation(ctx: "TaskContext"):
        seen["by_string"] = ctx
        return 3

    @flow.task
    async def async_context(context):
        seen["async"] = context
        return 4

    result = run_flow(flow)

    assert result.status is RunStatus.SUCCEEDED
    for key in ("by_name", "by_annotation", "by_string", "async"):
        assert seen[key] is result.context


@pytest.mark.in_process
def test_task_input_dict_has_the_seed_keys(flow, run_flow):
    seen = {}

    @flow.task(produces=["rows"])
    def load():
        return {"rows": [1, 2]}

    @flow.task
    def other():
        return "other result"

    @flow.task(depends_on=["load", "other"], requires=["rows", "threshold"])
    def use(task_input):
        seen.update(task_input)
        return len(task_input["rows"])

    result = run_flow(flow, {"threshold": 5}, run_id="run-7")

    assert result.status is RunStatus.SUCCEEDED
    assert seen["context"] is result.context
    assert seen["shared_state"] is result.context.shared_state
    assert seen["previous_results"] is result.context.previous_results
    assert seen["rows"] == [1, 2]
    assert seen["threshold"] == 5
    assert seen["load_result"] == {"rows": [1, 2]}
    assert seen["other_result"] == "other result"
    assert seen["idempotency_key"] == "run-7:use"
    assert result.results["use"] == 2


def test_seed_style_async_task_input_handlers_run_unchanged(flow, run_flow):
    async def load_data(task_input):
        return {"records": 10, "source": task_input["data_source"]}

    async def validate_data(task_input):
        loaded = task_input.get("load_data_result")
        if not loaded:
            raise ValueError("no data")
        return {"valid": loaded["records"]}

    flow.add_task("load_data", "Load", load_data, [], context_requirements=["data_source"])
    flow.add_task("validate_data", "Validate", validate_data, ["load_data"],
                  priority=flowdsl.TaskPriority.CRITICAL)

    result = run_flow(flow, {"data_source": "x.csv"})

    assert result.status is RunStatus.SUCCEEDED
    assert result.results["load_data"] == {"records": 10, "source": "x.csv"}
    assert result.results["validate_data"] == {"valid": 10}


@pytest.mark.in_process
def test_current_task_inside_handlers(flow, run_flow):
    seen = {}

    @flow.task
    def sync_task():
        current = flowdsl.current_task()
        seen["sync"] = (current.task_id, current.attempt, current.idempotency_key)
        return 1

    @flow.task(timeout=5.0)
    def threaded_task():  # runs in a worker thread because of its timeout
        current = flowdsl.current_task()
        seen["threaded"] = (current.task_id, current.attempt, current.idempotency_key)
        return 2

    @flow.task
    async def async_task():
        current = flowdsl.current_task()
        seen["async"] = (current.task_id, current.attempt, current.idempotency_key)
        return 3

    @flow.task(timeout=5.0)
    async def async_timed_task():
        await asyncio.sleep(0)
        current = flowdsl.current_task()
        seen["async_timed"] = (current.task_id, current.attempt, current.idempotency_key)
        return 4

    assert flowdsl.current_task() is None
    result = run_flow(flow, run_id="r1")
    assert flowdsl.current_task() is None

    assert result.status is RunStatus.SUCCEEDED
    assert seen["sync"] == ("sync_task", 1, "r1:sync_task")
    assert seen["threaded"] == ("threaded_task", 1, "r1:threaded_task")
    assert seen["async"] == ("async_task", 1, "r1:async_task")
    assert seen["async_timed"] == ("async_timed_task", 1, "r1:async_timed_task")


@pytest.mark.in_process
def test_current_task_attempt_counts_retries_with_a_stable_key(flow, run_flow):
    seen = []

    @flow.task(retries=2, retry_wait=0)
    def flaky():
        current = flowdsl.current_task()
        seen.append((current.attempt, current.idempotency_key))
        if current.attempt < 3:
            raise Boom("not yet")
        return "done"

    result = run_flow(flow, run_id="r2")

    assert result.results["flaky"] == "done"
    assert seen == [(1, "r2:flaky"), (2, "r2:flaky"), (3, "r2:flaky")]


def test_context_idempotency_key_is_the_running_tasks_key(flow, run_flow):
    @flow.task
    def first(context):
        return context.idempotency_key

    @flow.task
    def second(first, context):
        return context.idempotency_key

    result = run_flow(flow, run_id="r3")

    assert result.results == {"first": "r3:first", "second": "r3:second"}


# -- observers -----------------------------------------------------------------------------

class Collect:
    def __init__(self):
        self.events = []

    def on_event(self, event):
        self.events.append(event)


@pytest.mark.in_process
def test_observers_receive_typed_events_in_order(flow, run_flow, fake_sleep):
    attempts = []

    @flow.task
    def first():
        return 1

    @flow.task(retries=1, retry_wait=3)
    def second(first):
        attempts.append(1)
        if len(attempts) == 1:
            raise Boom("once")
        return 2

    @flow.task
    def third(second):
        raise Boom("always")

    @flow.task
    def fourth(third):
        return 4

    observer = Collect()
    as_function = []
    result = run_flow(flow, observers=[observer, as_function.append], raise_on_failure=False)

    events = observer.events
    assert as_function == events  # a plain callable observer gets the same events
    kinds = [(type(e).__name__, getattr(e, "task_id", None)) for e in events]
    assert kinds == [
        ("RunStarted", None),
        ("TaskStarted", "first"), ("TaskFinished", "first"),
        ("TaskStarted", "second"), ("TaskRetrying", "second"), ("TaskFinished", "second"),
        ("TaskStarted", "third"), ("TaskFinished", "third"),
        ("TaskFinished", "fourth"),
        ("RunFinished", None),
    ]
    started = events[0]
    assert isinstance(started, RunStarted)
    assert started.run_id == result.run_id and started.total_tasks == 4
    assert all(e.run_id == result.run_id for e in events)
    retrying = events[4]
    assert isinstance(retrying, TaskRetrying)
    assert retrying.attempt == 1 and type(retrying.error) is Boom and retrying.wait == 3
    finished = {e.task_id: e for e in events if isinstance(e, TaskFinished)}
    assert finished["first"].status is TaskStatus.COMPLETED
    assert finished["second"].status is TaskStatus.COMPLETED and finished["second"].attempts == 2
    assert finished["third"].status is TaskStatus.FAILED
    assert type(finished["third"].error) is Boom
    assert finished["fourth"].status is TaskStatus.SKIPPED and "third" in finished["fourth"].reason
    assert isinstance(events[2], TaskFinished) and isinstance(events[1], TaskStarted)
    ended = events[-1]
    assert isinstance(ended, RunFinished)
    assert ended.status is RunStatus.FAILED and ended.summary == result.summary


def test_an_observer_that_raises_cannot_change_the_run(flow, run_flow):
    flow.task(source)
    flow.task(double)

    def broken(event):
        raise RuntimeError("observer bug")

    class BrokenTooMuch:
        def on_event(self, event):
            raise ValueError("observer bug")

    watcher = Collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_flow(flow, observers=[broken, BrokenTooMuch(), watcher])

    assert result.status is RunStatus.SUCCEEDED
    assert result.results == {"source": 2, "double": 4}
    assert all(t.status is TaskStatus.COMPLETED and t.error is None for t in result.tasks.values())
    # observers after the broken ones still get every event
    assert [type(e) for e in watcher.events] == [
        RunStarted, TaskStarted, TaskFinished, TaskStarted, TaskFinished, RunFinished]
