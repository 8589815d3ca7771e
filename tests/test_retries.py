"""Retries: how many attempts, what is recorded between them, how long to wait, what is retried."""

import pytest
import tenacity

import flowdsl
from flowdsl import ContextPreservationStrategy, RunStatus, TaskRetrying, TaskStatus


class Boom(Exception):
    pass


class Other(Exception):
    pass


def always_fails():
    raise Boom(f"attempt {flowdsl.current_task().attempt} failed")


async def always_fails_async():
    raise Boom(f"attempt {flowdsl.current_task().attempt} failed")


def fails_twice():
    attempt = flowdsl.current_task().attempt
    if attempt <= 2:
        raise Boom(f"transient failure {attempt}")
    return f"succeeded on attempt {attempt}"


async def fails_twice_async():
    return fails_twice()


def raises_other():
    raise Other("not retryable")


# -- how many attempts -----------------------------------------------------------------

@pytest.mark.parametrize("retries", [0, 1, 3])
@pytest.mark.parametrize("handler", [always_fails, always_fails_async], ids=["sync", "async"])
def test_a_failing_task_makes_retries_plus_one_attempts(flow, run_flow, retries, handler):
    flow.task(id="task", retries=retries, retry_wait=0)(handler)

    result = run_flow(flow, raise_on_failure=False)

    task = result.tasks["task"]
    assert task.status is TaskStatus.FAILED
    assert task.attempts == retries + 1
    assert task.error.args == (f"attempt {retries + 1} failed",)  # the last attempt's error


@pytest.mark.parametrize("handler", [fails_twice, fails_twice_async], ids=["sync", "async"])
def test_a_task_stops_retrying_once_it_succeeds(flow, run_flow, handler):
    flow.task(id="task", retries=5, retry_wait=0)(handler)

    result = run_flow(flow)

    task = result.tasks["task"]
    assert task.status is TaskStatus.COMPLETED
    assert task.attempts == 3
    assert task.error is None
    assert result.results["task"] == "succeeded on attempt 3"


def test_decorator_default_is_no_retries(flow, run_flow, fake_sleep):
    flow.task(always_fails)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["always_fails"].attempts == 1
    assert fake_sleep.waits == []


def test_add_task_default_is_three_retries(flow, run_flow):
    flow.add_task("task", "Task", always_fails)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["task"].attempts == 4


# -- between attempts ---------------------------------------------------------------------

class Capture(ContextPreservationStrategy):
    """Keeps the TaskRun objects the runtime hands to the strategy hooks."""

    def __init__(self):
        self.tasks = {}

    def preserve_context(self, context, task):
        self.tasks[task.id] = task

    def restore_context(self, context, task):
        pass


@pytest.mark.parametrize("handler", [fails_twice, fails_twice_async], ids=["sync", "async"])
def test_status_is_retrying_between_attempts(flow, run_flow, fake_sleep, handler):
    flow.task(id="task", retries=3, retry_wait=2)(handler)
    strategy = Capture()
    seen = []

    def observer(event):
        if isinstance(event, TaskRetrying):
            seen.append((event.attempt, strategy.tasks[event.task_id].status))

    sleep_statuses = []
    original = fake_sleep.waits

    class Watching(list):
        def append(self, seconds):
            sleep_statuses.append(strategy.tasks["task"].status)
            super().append(seconds)

    fake_sleep.waits = Watching(original)
    result = run_flow(flow, context_strategy=strategy, observers=[observer])

    assert seen == [(1, TaskStatus.RETRYING), (2, TaskStatus.RETRYING)]
    assert sleep_statuses == [TaskStatus.RETRYING, TaskStatus.RETRYING]
    assert result.tasks["task"].status is TaskStatus.COMPLETED


def test_each_retry_is_traced_with_its_error(flow, run_flow):
    flow.task(id="task", retries=3, retry_wait=0)(fails_twice)

    result = run_flow(flow)

    entries = [e for e in result.context.execution_trace if e["task_id"] == "task"]
    assert [e["action"] for e in entries] == ["task_retry", "task_retry", "task_completed"]
    assert "transient failure 1" in str(entries[0]["details"])
    assert "transient failure 2" in str(entries[1]["details"])
    for entry in entries:
        assert isinstance(entry["timestamp"], float)


def test_retry_events_carry_the_attempt_error_and_wait(flow, run_flow):
    flow.task(id="task", retries=2, retry_wait=1.5)(always_fails)
    events = []

    result = run_flow(flow, observers=[events.append], raise_on_failure=False)

    retrying = [e for e in events if isinstance(e, TaskRetrying)]
    assert [e.attempt for e in retrying] == [1, 2]
    assert [e.error.args for e in retrying] == [("attempt 1 failed",), ("attempt 2 failed",)]
    assert [e.wait for e in retrying] == [1.5, 1.5]
    assert result.tasks["task"].attempts == 3


# -- how long to wait ------------------------------------------------------------------------

def test_add_task_default_wait_is_exponential_1_2_4(flow, run_flow, fake_sleep):
    flow.add_task("task", "Task", always_fails)

    run_flow(flow, raise_on_failure=False)

    assert fake_sleep.waits == [1, 2, 4]


@pytest.mark.parametrize("handler", [always_fails, always_fails_async], ids=["sync", "async"])
def test_decorator_default_wait_is_exponential(flow, run_flow, fake_sleep, handler):
    flow.task(id="task", retries=3)(handler)

    run_flow(flow, raise_on_failure=False)

    assert fake_sleep.waits == [1, 2, 4]


def test_default_wait_is_capped_at_60_seconds(flow, run_flow, fake_sleep):
    flow.task(id="task", retries=8)(always_fails)

    run_flow(flow, raise_on_failure=False)

    assert fake_sleep.waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_retry_wait_number_is_fixed_seconds(flow, run_flow, fake_sleep):
    flow.task(id="task", retries=2, retry_wait=0.25)(always_fails)

    run_flow(flow, raise_on_failure=False)

    assert fake_sleep.waits == [0.25, 0.25]


def test_retry_wait_zero_never_waits(flow, run_flow, fake_sleep):
    flow.task(id="task", retries=2, retry_wait=0)(always_fails)

    run_flow(flow, raise_on_failure=False)

    assert all(wait == 0 for wait in fake_sleep.waits)


@pytest.mark.parametrize(
    "wait, expected",
    [
        (tenacity.wait_fixed(3), [3, 3, 3]),
        (tenacity.wait_chain(tenacity.wait_fixed(1), tenacity.wait_fixed(5)), [1, 5, 5]),
        (tenacity.wait_exponential(multiplier=2, max=5), [2, 4, 5]),
        (tenacity.wait_fixed(1) + tenacity.wait_fixed(0.5), [1.5, 1.5, 1.5]),
    ],
    ids=["fixed", "chain", "exponential", "sum"],
)
def test_tenacity_wait_strategies_pass_straight_through(flow, run_flow, fake_sleep, wait,
                                                        expected):
    flow.task(id="task", retries=3, retry_wait=wait)(always_fails)

    run_flow(flow, raise_on_failure=False)

    assert fake_sleep.waits == expected


@pytest.mark.parametrize("handler", [always_fails, always_fails_async], ids=["sync", "async"])
def test_no_wait_after_the_last_attempt(flow, run_flow, fake_sleep, handler):
    flow.task(id="task", retries=2, retry_wait=7)(handler)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["task"].attempts == 3
    assert fake_sleep.waits == [7, 7]


# -- what is retried --------------------------------------------------------------------------

def test_retry_on_a_type_retries_matching_errors(flow, run_flow):
    flow.task(id="task", retries=3, retry_wait=0, retry_on=Boom)(fails_twice)

    result = run_flow(flow)

    assert result.tasks["task"].status is TaskStatus.COMPLETED
    assert result.tasks["task"].attempts == 3


def test_retry_on_a_type_does_not_retry_other_errors(flow, run_flow, fake_sleep):
    flow.task(id="task", retries=3, retry_wait=0, retry_on=Boom)(raises_other)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["task"].status is TaskStatus.FAILED
    assert result.tasks["task"].attempts == 1
    assert type(result.tasks["task"].error) is Other
    assert fake_sleep.waits == []
    assert not any(e["action"] == "task_retry" for e in result.context.execution_trace)


def test_retry_on_a_tuple_of_types(flow, run_flow):
    flow.task(id="boom", retries=2, retry_wait=0, retry_on=(KeyError, Boom))(always_fails)
    flow.task(id="other", retries=2, retry_wait=0, retry_on=(KeyError, Boom))(raises_other)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["boom"].attempts == 3
    assert result.tasks["other"].attempts == 1


def test_retry_on_subclasses_of_the_named_type(flow, run_flow):
    flow.task(id="task", retries=2, retry_wait=0, retry_on=Exception)(always_fails)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["task"].attempts == 3


def fails_with_message():
    attempt = flowdsl.current_task().attempt
    if attempt == 1:
        raise Boom("transient: try again")
    if attempt == 2:
        raise Boom("fatal: give up")
    return "unreachable"


def test_retry_on_a_tenacity_predicate(flow, run_flow):
    predicate = tenacity.retry_if_exception_message(match="transient.*")
    flow.task(id="task", retries=5, retry_wait=0, retry_on=predicate)(fails_with_message)

    result = run_flow(flow, raise_on_failure=False)

    task = result.tasks["task"]
    assert task.status is TaskStatus.FAILED
    assert task.attempts == 2  # retried after "transient", not after "fatal"
    assert task.error.args == ("fatal: give up",)


def test_retry_on_combined_tenacity_predicates(flow, run_flow):
    predicate = tenacity.retry_if_exception_type(Other) | tenacity.retry_if_exception_message(
        match="transient.*")
    flow.task(id="task", retries=5, retry_wait=0, retry_on=predicate)(fails_with_message)
    flow.task(id="other", retries=2, retry_wait=0, retry_on=predicate)(raises_other)

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["task"].attempts == 2
    assert result.tasks["other"].attempts == 3


def test_retries_per_task_are_independent(flow, run_flow):
    flow.task(id="retried", retries=2, retry_wait=0)(always_fails)
    flow.task(id="not_retried")(always_fails)

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    assert result.tasks["retried"].attempts == 3
    assert result.tasks["not_retried"].attempts == 1

