"""DESIGN.md "Failure semantics", one group of tests per rule."""

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import flowdsl
from flowdsl import (
    ContextPreservationStrategy,
    Flow,
    FlowError,
    MissingOutputError,
    Priority,
    RunResult,
    RunStatus,
    TaskStatus,
    TaskTimeoutError,
)

SHORT = 0.05  # seconds: a timeout that a blocked handler always exceeds
LONG = 10.0  # seconds: how long a blocked handler waits before giving up on its own
#: seconds: a timeout that a prompt attempt always meets, even a round trip to a Dask worker on
#: a loaded machine (SHORT is not: the retry of a timed-out attempt failed too under load)
PROMPT = 2.0


class Boom(Exception):
    pass


def names(text, task_id):
    """True when ``text`` mentions ``task_id`` as a whole identifier."""
    return re.search(rf"(?<![\w]){re.escape(task_id)}(?![\w])", text) is not None


def ok():
    return "ok"


def fail():
    raise Boom("failed on purpose")


def after_fail(fail):
    return "never"


def grandchild(after_fail):
    return "never"


def two_parents(ok, fail):
    return "never"


def independent():
    return "independent"


def needs_ok(ok):
    return "needs ok"


# -- a failed task ---------------------------------------------------------------------------

def test_failure_skips_downstream_and_independent_tasks_still_run(flow, run_flow):
    flow.task(ok)
    flow.task(fail)
    flow.task(after_fail)
    flow.task(grandchild)
    flow.task(two_parents)

    @flow.task(depends_on=[fail])
    def declared_child():
        return "never"

    flow.task(priority=Priority.LOW)(independent)
    flow.task(priority=Priority.LOW)(needs_ok)

    result = run_flow(flow, raise_on_failure=False)

    tasks = result.tasks
    assert result.status is RunStatus.FAILED
    assert tasks["fail"].status is TaskStatus.FAILED
    assert type(tasks["fail"].error) is Boom
    for skipped in ("after_fail", "grandchild", "two_parents", "declared_child"):
        assert tasks[skipped].status is TaskStatus.SKIPPED, skipped
        assert "fail" in tasks[skipped].reason  # names the failed upstream task
        assert tasks[skipped].attempts == 0
        assert skipped not in result.results
    assert names(tasks["grandchild"].reason, "fail")  # the failed task, not its skipped child
    assert tasks["independent"].status is TaskStatus.COMPLETED
    assert tasks["needs_ok"].status is TaskStatus.COMPLETED
    assert result.results == {"ok": "ok", "independent": "independent", "needs_ok": "needs ok"}


@pytest.mark.one_at_a_time
def test_summary_counts_skipped_and_cancelled_apart_from_failed(flow, run_flow):
    flow.task(ok)
    flow.task(priority=Priority.HIGH)(fail)  # runs first, then ok, then the critical task
    flow.task(after_fail)
    flow.task(grandchild)

    @flow.task(priority=Priority.CRITICAL, depends_on=["ok"])
    def critical():
        raise Boom("critical")

    @flow.task(priority=Priority.LOW)
    def later():
        return "never"

    result = run_flow(flow, raise_on_failure=False)
    summary = result.summary

    assert summary["total_tasks"] == 6
    assert summary["successful_tasks"] == 1  # ok
    assert summary["failed_tasks"] == 2  # fail, critical
    assert summary["skipped_tasks"] == 2  # after_fail, grandchild
    assert summary["cancelled_tasks"] == 1  # later
    assert result.tasks["later"].status is TaskStatus.CANCELLED


def test_skipped_reason_names_the_failed_task_not_the_skipped_parent(flow, run_flow):
    flow.task(fail)
    flow.task(after_fail)
    flow.task(grandchild)

    result = run_flow(flow, raise_on_failure=False)

    assert names(result.tasks["grandchild"].reason, "fail")
    assert not names("upstream task 'after_fail' failed", "fail")  # the check itself is exact


# -- a critical task fails ----------------------------------------------------------------

@pytest.mark.one_at_a_time
def test_critical_failure_skips_downstream_and_cancels_the_rest(flow, run_flow):
    @flow.task(priority=Priority.HIGH)
    def prepare():
        return "prepared"

    @flow.task(priority=Priority.CRITICAL, retries=2, retry_wait=0)
    def gate(prepare):
        raise Boom("gate closed")

    @flow.task
    def downstream(gate):
        return "never"

    @flow.task(priority=Priority.LOW)
    def unrelated():
        return "never"

    @flow.task(priority=Priority.LOW)
    def unrelated_child(unrelated):
        return "never"

    @flow.task(priority=Priority.LOW)
    def after_prepare(prepare):
        return "never"

    result = run_flow(flow, raise_on_failure=False)
    tasks = result.tasks

    assert result.status is RunStatus.FAILED
    assert tasks["prepare"].status is TaskStatus.COMPLETED
    assert result.results == {"prepare": "prepared"}
    assert tasks["gate"].status is TaskStatus.FAILED
    assert tasks["gate"].attempts == 3
    assert tasks["downstream"].status is TaskStatus.SKIPPED
    assert "gate" in tasks["downstream"].reason
    for cancelled in ("unrelated", "unrelated_child", "after_prepare"):
        assert tasks[cancelled].status is TaskStatus.CANCELLED, cancelled
        assert "gate" in tasks[cancelled].reason
        assert tasks[cancelled].attempts == 0
    assert result.summary["cancelled_tasks"] == 3
    assert result.summary["skipped_tasks"] == 1
    assert result.summary["failed_tasks"] == 1


@pytest.mark.one_at_a_time
def test_priority_one_or_lower_is_critical(flow, run_flow):
    @flow.task(priority=0)
    def gate():
        raise Boom("gate closed")

    @flow.task(priority=5)
    def later():
        return "never"

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    assert result.tasks["later"].status is TaskStatus.CANCELLED
    assert "gate" in result.tasks["later"].reason


def test_a_non_critical_failure_does_not_stop_the_run(flow, run_flow):
    @flow.task(priority=Priority.HIGH)
    def failing():
        raise Boom("not critical")

    @flow.task(priority=Priority.LOW)
    def later():
        return "ran"

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    assert result.tasks["later"].status is TaskStatus.COMPLETED
    assert result.summary["cancelled_tasks"] == 0


# -- timeouts -----------------------------------------------------------------------------

@pytest.mark.in_process
def test_sync_timeout_raises_task_timeout_error_naming_task_and_limit(flow, run_flow):
    release = threading.Event()

    @flow.task(timeout=SHORT)
    def slow():
        release.wait(LONG)
        return "late"

    try:
        result = run_flow(flow, raise_on_failure=False)
    finally:
        release.set()

    task = result.tasks["slow"]
    assert result.status is RunStatus.FAILED
    assert task.status is TaskStatus.FAILED
    assert task.attempts == 1
    error = task.error
    assert isinstance(error, TaskTimeoutError)
    assert isinstance(error, TimeoutError) and isinstance(error, FlowError)
    assert "slow" in str(error) and "0.05" in str(error)
    assert "slow" not in result.results


def test_async_timeout_raises_task_timeout_error_naming_task_and_limit(flow, run_flow):
    @flow.task(timeout=SHORT)
    async def slow_async():
        await asyncio.sleep(LONG)
        return "late"

    result = run_flow(flow, raise_on_failure=False)

    error = result.tasks["slow_async"].error
    assert result.tasks["slow_async"].status is TaskStatus.FAILED
    assert isinstance(error, TaskTimeoutError)
    assert "slow_async" in str(error) and "0.05" in str(error)
    assert "slow_async" not in result.results


@pytest.mark.in_process
def test_timed_out_attempt_is_retried_and_its_late_result_discarded(flow, run_flow):
    release = threading.Event()
    first_done = threading.Event()

    @flow.task(timeout=SHORT, retries=2, retry_wait=0)
    def flaky():
        if flowdsl.current_task().attempt == 1:
            try:
                release.wait(LONG)
                return "late"
            finally:
                first_done.set()
        return "fresh"

    @flow.task
    def reader(flaky):
        return flaky

    try:
        result = run_flow(flow)
    finally:
        release.set()
    assert first_done.wait(LONG)

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["flaky"].attempts == 2
    assert result.results == {"flaky": "fresh", "reader": "fresh"}
    retries = [e for e in result.context.execution_trace if e["action"] == "task_retry"]
    assert len(retries) == 1 and "TaskTimeoutError" in str(retries[0]["details"])


def test_async_timed_out_attempt_is_retried(flow, run_flow):
    @flow.task(timeout=PROMPT, retries=1, retry_wait=0)
    async def flaky_async():
        if flowdsl.current_task().attempt == 1:
            await asyncio.sleep(LONG)
            return "late"
        return "fresh"

    result = run_flow(flow)

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["flaky_async"].attempts == 2
    assert result.results["flaky_async"] == "fresh"


@pytest.mark.in_process
def test_timeout_not_retried_when_retry_on_excludes_it(flow, run_flow):
    release = threading.Event()

    @flow.task(timeout=SHORT, retries=3, retry_wait=0, retry_on=ValueError)
    def slow():
        release.wait(LONG)

    try:
        result = run_flow(flow, raise_on_failure=False)
    finally:
        release.set()

    assert result.tasks["slow"].attempts == 1
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)


@pytest.mark.in_process
def test_late_shared_state_writes_of_a_sync_attempt_are_discarded(flow, run_flow):
    release = threading.Event()
    wrote = threading.Event()

    @flow.task(timeout=SHORT)
    def slow(context):
        release.wait(LONG)
        try:
            context.shared_state["late"] = "from the abandoned thread"
            context.update_shared_state("late2", 1)
        finally:
            wrote.set()

    @flow.task(priority=Priority.LOW)
    def other(context):
        context.shared_state["kept"] = True

    try:
        result = run_flow(flow, raise_on_failure=False)
    finally:
        release.set()
    assert wrote.wait(LONG)

    state = result.context.shared_state
    assert "late" not in state and "late2" not in state
    assert state == {"kept": True}
    assert result.context.delta("slow") == {}
    assert result.tasks["slow"].status is TaskStatus.FAILED


@pytest.mark.in_process
def test_late_shared_state_writes_of_a_retried_attempt_are_discarded(flow, run_flow):
    release = threading.Event()
    wrote = threading.Event()

    @flow.task(timeout=SHORT, retries=1, retry_wait=0)
    def flaky(context):
        if flowdsl.current_task().attempt == 1:
            release.wait(LONG)
            try:
                context.shared_state["value"] = "late"
            finally:
                wrote.set()
            return "late"
        context.shared_state["value"] = "fresh"
        return "fresh"

    try:
        result = run_flow(flow)
    finally:
        release.set()
    assert wrote.wait(LONG)

    assert result.context.shared_state == {"value": "fresh"}
    assert result.context.delta("flaky") == {"value": "fresh"}


@pytest.mark.in_process
def test_late_shared_state_writes_of_an_async_attempt_are_discarded(flow, run_flow):
    late_writes = []

    @flow.task(timeout=SHORT)
    async def slow_async(context):
        try:
            await asyncio.sleep(LONG)
        finally:  # runs when the attempt is cancelled at its timeout
            context.shared_state["late"] = "after the timeout"
            late_writes.append(True)

    @flow.task(priority=Priority.LOW)
    async def settle():  # the run ends only after the cancelled attempt has unwound
        deadline = time.monotonic() + LONG
        while not late_writes:
            assert time.monotonic() < deadline, "the timed-out attempt never unwound"
            await asyncio.sleep(0.001)
        return "settled"

    result = run_flow(flow, raise_on_failure=False)

    assert isinstance(result.tasks["slow_async"].error, TaskTimeoutError)
    assert late_writes == [True]  # the late write was attempted...
    assert "late" not in result.context.shared_state  # ...and discarded
    assert result.context.delta("slow_async") == {}


@pytest.mark.in_process
def test_an_abandoned_sync_thread_never_delays_the_end_of_the_run(flow, run_flow):
    release = threading.Event()
    finished = threading.Event()

    @flow.task(timeout=SHORT)
    def stuck():
        try:
            release.wait(LONG)
        finally:
            finished.set()

    @flow.task
    def after():
        return "after"

    try:
        result = run_flow(flow, raise_on_failure=False)
        # the run ended while the abandoned handler was still blocked
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(LONG)

    assert result.tasks["stuck"].status is TaskStatus.FAILED
    assert result.results == {"after": "after"}


ABANDONING_SCRIPT = """
import time
from flowdsl import Flow

flow = Flow("abandon")

@flow.task(timeout=0.05)
def stuck():
    time.sleep(120)

@flow.task
def after():
    return "after"

result = flow.run(raise_on_failure=False)
print(result.tasks["stuck"].status.value, result.results["after"])
"""


def test_an_abandoned_thread_does_not_keep_the_process_alive():
    completed = subprocess.run([sys.executable, "-c", ABANDONING_SCRIPT], capture_output=True,
                               text=True, timeout=30)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["failed", "after"]


def test_a_handlers_own_timeout_error_is_not_converted(flow, run_flow):
    @flow.task(timeout=5.0)
    def raises_timeout():
        raise TimeoutError("my own")

    result = run_flow(flow, raise_on_failure=False)

    error = result.tasks["raises_timeout"].error
    assert type(error) is TimeoutError and error.args == ("my own",)


# -- produces ------------------------------------------------------------------------------

@pytest.mark.parametrize("returned", [{"other": 1}, 5, None, ["k"]])
def test_missing_output_fails_naming_task_and_key(flow, run_flow, returned):
    @flow.task(produces=["k"])
    def make():
        return returned

    @flow.task(depends_on=["make"])
    def reader(k):
        return k

    result = run_flow(flow, raise_on_failure=False)

    error = result.tasks["make"].error
    assert result.tasks["make"].status is TaskStatus.FAILED
    assert isinstance(error, MissingOutputError)
    assert isinstance(error, LookupError) and isinstance(error, FlowError)
    assert "make" in str(error) and "'k'" in str(error)
    assert "k" not in result.context.shared_state
    assert result.tasks["reader"].status is TaskStatus.SKIPPED


def test_missing_output_names_the_missing_key_of_several(flow, run_flow):
    @flow.task(produces=["first", "second"])
    def make():
        return {"first": 1}

    result = run_flow(flow, raise_on_failure=False)

    error = result.tasks["make"].error
    assert isinstance(error, MissingOutputError)
    assert "second" in str(error)
    assert result.context.shared_state == {}  # nothing half-written


def test_missing_output_is_not_retried(flow, run_flow):
    @flow.task(produces=["k"], retries=2, retry_wait=0)
    def make():
        if flowdsl.current_task().attempt == 1:
            return {}
        return {"k": "second try"}

    result = run_flow(flow, raise_on_failure=False)

    task = result.tasks["make"]
    assert task.status is TaskStatus.FAILED and type(task.error) is MissingOutputError
    assert task.attempts == 1
    assert result.context.shared_state == {}
    assert not [e for e in result.context.execution_trace if e["action"] == "task_retry"]


def test_missing_output_of_an_async_task_is_not_retried(flow, run_flow, fake_sleep):
    @flow.task(produces=["k"], retries=1, retry_wait=5)
    async def make():
        if flowdsl.current_task().attempt == 1:
            return "not a mapping"
        return {"k": 1}

    with pytest.raises(flowdsl.RunFailedError) as info:
        run_flow(flow)

    assert info.value.result.tasks["make"].attempts == 1
    assert type(info.value.__cause__) is MissingOutputError
    assert fake_sleep.waits == []


# -- interrupts ------------------------------------------------------------------------------

class Recording(ContextPreservationStrategy):
    def __init__(self):
        self.preserved = []
        self.restored = []

    def preserve_context(self, context, task):
        self.preserved.append(task.id)

    def restore_context(self, context, task):
        self.restored.append(task.id)


INTERRUPTS = [KeyboardInterrupt, SystemExit, asyncio.CancelledError]
SHAPES = ["sync", "sync_timeout", "async", "async_timeout", "sync_in_async_flow"]


def _interrupting_flow(name, interrupt, shape):
    flow = Flow(name)

    if shape == "sync_in_async_flow":
        @flow.task(priority=Priority.HIGH)
        async def done():
            return "kept"
    else:
        @flow.task(priority=Priority.HIGH)
        def done():
            return "kept"

    options = {"retries": 3, "retry_wait": 0, "depends_on": ["done"]}
    if shape.endswith("timeout"):
        options["timeout"] = 5.0
    if shape.startswith("async"):
        async def stop():
            await asyncio.sleep(0)
            raise interrupt("stop now")
    else:
        def stop():
            raise interrupt("stop now")
    flow.task(**options)(stop)

    @flow.task
    def after(stop):
        return "never"

    @flow.task(priority=Priority.LOW)
    def other():
        return "never"

    return flow


@pytest.mark.one_at_a_time
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=lambda e: e.__name__)
def test_interrupts_cancel_the_run_and_propagate_with_the_result(run_flow, fake_sleep, interrupt,
                                                                 shape):
    flow = _interrupting_flow(f"interrupted-{shape}", interrupt, shape)
    strategy = Recording()

    with pytest.raises(interrupt) as info:
        run_flow(flow, context_strategy=strategy)

    assert info.value.args == ("stop now",)
    result = info.value.flowdsl_result
    assert isinstance(result, RunResult)
    assert result.status is RunStatus.CANCELLED
    tasks = result.tasks
    assert tasks["done"].status is TaskStatus.COMPLETED
    assert result.results == {"done": "kept"}
    assert tasks["stop"].status is TaskStatus.CANCELLED
    assert tasks["stop"].attempts == 1  # never retried
    assert fake_sleep.waits == []
    assert tasks["after"].status is TaskStatus.CANCELLED
    assert tasks["other"].status is TaskStatus.CANCELLED
    assert result.summary["cancelled_tasks"] == 3
    assert result.summary["successful_tasks"] == 1
    assert "stop" not in result.context.records  # cancelled in flight: no record
    assert "done" in result.context.records
    assert [e["task_id"] for e in result.context.previous_results] == ["done"]
    assert strategy.restored == ["done"]  # not called for the interrupted task


def test_interrupt_during_a_retry_wait_cancels_the_task():
    flow = Flow("interrupt-in-wait")
    strategy = Recording()

    @flow.task(retries=3, retry_wait=1)
    def flaky():
        raise Boom("retry me")

    @flow.task(priority=Priority.LOW)
    def later():
        return "never"

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    executor = flowdsl.SequentialExecutor(sleep=interrupted_sleep)
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(executor=executor, context_strategy=strategy)

    result = info.value.flowdsl_result
    assert result.status is RunStatus.CANCELLED
    assert result.tasks["flaky"].status is TaskStatus.CANCELLED
    assert result.tasks["flaky"].attempts == 1
    assert result.tasks["later"].status is TaskStatus.CANCELLED
    assert strategy.restored == []


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
@pytest.mark.parametrize("delay", [0.0, SHORT], ids=["at-once", "while-waiting"])
def test_ctrl_c_during_a_threaded_attempt_discards_its_later_writes(delay):
    """A real SIGINT reaches the main thread while a sync attempt with a timeout runs in its
    worker thread: the run is CANCELLED and that attempt's writes after it are discarded."""
    flow = Flow("ctrl-c")
    main = threading.get_ident()
    release = threading.Event()
    wrote = threading.Event()

    @flow.task
    def done():
        return "kept"

    @flow.task(timeout=LONG, depends_on=["done"])
    def stuck(context):
        if delay:
            time.sleep(delay)
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C does
        release.wait(LONG)
        try:
            context.shared_state["late"] = "after the interrupt"
        finally:
            wrote.set()

    @flow.task
    def after(stuck):
        return "never"

    try:
        with pytest.raises(KeyboardInterrupt) as info:
            flow.run()
    finally:
        release.set()
    assert wrote.wait(LONG)

    result = info.value.flowdsl_result
    assert result.status is RunStatus.CANCELLED
    assert result.tasks["done"].status is TaskStatus.COMPLETED
    assert result.tasks["stuck"].status is TaskStatus.CANCELLED
    assert result.tasks["after"].status is TaskStatus.CANCELLED
    assert "late" not in result.context.shared_state


@pytest.mark.in_process
def test_interrupt_is_not_retried_even_when_retry_on_names_it(run_flow):
    flow = Flow("interrupt-retry-on")
    calls = []

    @flow.task(retries=3, retry_wait=0, retry_on=(KeyboardInterrupt, Exception))
    def stop():
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        run_flow(flow)

    assert calls == [1]
    assert info.value.flowdsl_result.tasks["stop"].status is TaskStatus.CANCELLED


# -- a handler's own exception ----------------------------------------------------------------

def test_handler_exception_is_stored_as_raised_after_retries():
    flow = Flow("identity")
    raised = []

    @flow.task(retries=2, retry_wait=0)
    def fails():
        error = Boom(f"attempt {len(raised) + 1}")
        raised.append(error)
        raise error

    @flow.task
    async def fails_async():
        error = KeyError("async own")
        raised.append(error)
        raise error

    result = flow.run(raise_on_failure=False)

    assert len(raised) == 4
    assert result.tasks["fails"].error is raised[2]  # the last attempt's exception
    assert result.tasks["fails_async"].error is raised[3]
    assert type(result.tasks["fails_async"].error) is KeyError


def test_handler_exception_is_not_wrapped(run_flow):
    flow = Flow("not-wrapped")

    @flow.task
    def fails():
        raise Boom("mine", 42)

    result = run_flow(flow, raise_on_failure=False)

    error = result.tasks["fails"].error
    assert type(error) is Boom and error.args == ("mine", 42)
    assert not isinstance(error, FlowError)
