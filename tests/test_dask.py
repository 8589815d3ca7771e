"""The Dask executor (DESIGN.md, "Dask executor"; issue 6) on real LocalClusters.

Most tests share the session's ``dask_client`` (2 worker processes x 2 threads); a test that
needs special scheduler config (``allowed-failures`` = 0) or a cluster shape (1 worker, 1
thread) starts a small LocalCluster of its own. Handlers are defined inside the tests, so
cloudpickle sends them by value (the worker processes cannot import this test module).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.slow  # a real cluster: seconds per test

import flowdsl  # noqa: E402
from flowdsl import (  # noqa: E402
    DefinitionError,
    Flow,
    Priority,
    RunStatus,
    SerializationError,
    TaskStatus,
    TaskTimeoutError,
)
from flowdsl.executors import dask as dask_executor  # noqa: E402

DaskExecutor = flowdsl.DaskExecutor


def _small_cluster(**options: Any) -> tuple[Any, Any]:
    options.setdefault("processes", True)
    options.setdefault("dashboard_address", ":0")
    cluster = distributed.LocalCluster(**options)
    return cluster, distributed.Client(cluster)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---------------------------------------------------------------------------------------
# A worker that dies mid-attempt
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_client() -> Any:
    """2 worker processes; the scheduler gives up on a task at the first worker death
    (``allowed-failures`` = 0), so a dying worker is a failed attempt for flowdsl."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster, client = _small_cluster(n_workers=2, threads_per_worker=1)
    yield client
    client.close()
    cluster.close()


def _killing_flow(tmp_path: Path, retries: int) -> Flow:
    marker = tmp_path / "killed-once"
    runs = tmp_path / "victim-runs"
    flow = Flow(f"kill-{retries}")

    @flow.task(retries=retries, retry_wait=0)
    def victim():
        with open(runs, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        if not marker.exists():  # first attempt: the worker process dies mid-attempt
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # never reached
        return {"survived_on": distributed.get_worker().address}

    @flow.task
    def after(victim):
        return victim["survived_on"]

    return flow


def test_a_killed_worker_fails_the_attempt_and_the_task_is_retried(strict_client, tmp_path):
    flow = _killing_flow(tmp_path, retries=1)

    result = flow.run(executor=DaskExecutor(strict_client))

    assert result.status is RunStatus.SUCCEEDED, {k: t.error for k, t in result.tasks.items()}
    victim = result.tasks["victim"]
    assert victim.status is TaskStatus.COMPLETED
    assert victim.attempts == 2
    assert len(_lines(tmp_path / "victim-runs")) == 2  # the handler ran twice, no more
    retries = [e for e in result.context.execution_trace
               if e["task_id"] == "victim" and e["action"] == "task_retry"]
    assert len(retries) == 1
    error = retries[0]["details"]["error"]
    assert "KilledWorker" in error
    assert "tcp://" in error  # names the worker that died
    assert result.results["after"] == result.results["victim"]["survived_on"]


def test_a_killed_worker_without_retries_fails_the_task_with_the_worker_named(
        strict_client, tmp_path):
    flow = _killing_flow(tmp_path, retries=0)

    result = flow.run(executor=DaskExecutor(strict_client), raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    victim = result.tasks["victim"]
    assert victim.status is TaskStatus.FAILED
    assert victim.attempts == 1
    assert type(victim.error).__name__ == "KilledWorker"
    assert "tcp://" in str(victim.error)  # the worker's address
    assert result.tasks["after"].status is TaskStatus.SKIPPED
    assert len(_lines(tmp_path / "victim-runs")) == 1


def test_a_downstream_task_still_gets_its_value_when_the_worker_holding_it_dies(
        strict_client, tmp_path):
    """When the worker that holds a completed task's result dies before a downstream task
    reads it, the downstream task still gets the right value and the run succeeds. Dask
    recomputes lost data that a client holds, so the upstream handler may run once more on
    the cluster (at least once; the README says so): flowdsl's record of it is unchanged."""
    runs = tmp_path / "upstream-runs"
    flow = Flow("lost-upstream-result")

    @flow.task
    def upstream():
        with open(runs, "a") as fh:
            fh.write("x\n")
        return {"pid": os.getpid(), "worker": distributed.get_worker().address,
                "payload": b"y" * 1000}

    @flow.task(retries=1, retry_wait=0)
    def assassin(upstream):
        marker = tmp_path / "killed"
        if not marker.exists():  # kill the process holding upstream's result, once
            marker.write_text("x")
            os.kill(upstream["pid"], signal.SIGKILL)  # (if it is this very process, it dies here)
            here, deadline = distributed.get_client(), time.monotonic() + 30
            while upstream["worker"] in here.scheduler_info()["workers"]:  # until Dask knows
                assert time.monotonic() < deadline, "the scheduler never saw the worker die"
                time.sleep(0.01)
        return "done"

    @flow.task(depends_on=["assassin"])
    def reader(upstream):
        return len(upstream["payload"])

    result = flow.run(executor=DaskExecutor(strict_client))

    assert result.status is RunStatus.SUCCEEDED, {k: t.error for k, t in result.tasks.items()}
    assert result.results["reader"] == 1000
    assert result.tasks["upstream"].attempts == 1
    assert 1 <= len(_lines(runs)) <= 2


# ---------------------------------------------------------------------------------------
# Pickling: handlers, results, arguments
# ---------------------------------------------------------------------------------------

def test_a_handler_that_cannot_be_pickled_is_a_definition_error_before_any_task(
        dask_client, tmp_path):
    lock = threading.Lock()
    side_effect = tmp_path / "first-ran"
    flow = Flow("unpicklable-handler")

    @flow.task(priority=Priority.CRITICAL)
    def first():
        side_effect.write_text("ran")
        return 1

    @flow.task
    def guarded(first):
        with lock:  # the closure holds a threading.Lock
            return first + 1

    with pytest.raises(DefinitionError) as caught:
        flow.run(executor=DaskExecutor(dask_client))

    assert "guarded" in str(caught.value)
    assert not side_effect.exists()  # no task ran


@pytest.mark.parametrize("kind", ["lock", "generator"])
def test_a_result_that_cannot_be_pickled_fails_the_task_with_serialization_error(
        dask_client, kind):
    flow = Flow(f"unpicklable-result-{kind}")

    @flow.task
    def maker(context):
        context.shared_state["written_by_maker"] = 1
        if kind == "lock":
            return threading.Lock()
        return (i for i in range(3))

    @flow.task
    def reader(maker):
        return maker

    @flow.task
    def independent():
        return "fine"

    result = flow.run(executor=DaskExecutor(dask_client), raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    maker_run = result.tasks["maker"]
    assert maker_run.status is TaskStatus.FAILED
    assert isinstance(maker_run.error, SerializationError)
    assert "maker" in str(maker_run.error)
    assert result.tasks["reader"].status is TaskStatus.SKIPPED
    assert result.results["independent"] == "fine"
    # the failing task's writes never reach the driver's shared state
    assert "written_by_maker" not in result.context.shared_state


def test_a_serialization_error_is_not_retried(dask_client):
    """DESIGN ("Run store"): "A SerializationError is not retried"."""
    flow = Flow("unpicklable-result-retries")

    @flow.task(retries=2, retry_wait=0)
    def maker():
        return threading.Lock()

    result = flow.run(executor=DaskExecutor(dask_client), raise_on_failure=False)

    assert isinstance(result.tasks["maker"].error, SerializationError)
    assert result.tasks["maker"].attempts == 1


def test_an_argument_that_cannot_be_pickled_fails_the_task_with_serialization_error(dask_client):
    flow = Flow("unpicklable-argument")

    @flow.task
    def needs(handle):
        return "never"

    @flow.task
    def after(needs):
        return needs

    result = flow.run({"handle": threading.Lock()}, executor=DaskExecutor(dask_client),
                      raise_on_failure=False)

    assert result.tasks["needs"].status is TaskStatus.FAILED
    assert isinstance(result.tasks["needs"].error, SerializationError)
    assert "needs" in str(result.tasks["needs"].error)
    assert result.tasks["after"].status is TaskStatus.SKIPPED


# ---------------------------------------------------------------------------------------
# Priority and concurrency
# ---------------------------------------------------------------------------------------

def test_priority_is_submitted_as_dask_priority(dask_client):
    """Dask runs higher ``priority=`` first; the scheduler stores it negated as the first
    item of a task's priority tuple (lower tuples run first)."""
    flow = Flow("dask-priority-values")

    def own_priority():
        worker = distributed.get_worker()
        return worker.state.tasks[worker.get_current_task()].priority

    for name, priority in [("low", Priority.LOW), ("critical", Priority.CRITICAL),
                           ("normal", Priority.NORMAL), ("high", Priority.HIGH)]:
        flow.add_task(name, name, own_priority, priority=priority, max_retries=0)

    result = flow.run(executor=DaskExecutor(dask_client))

    assert result.status is RunStatus.SUCCEEDED
    seen = result.results
    assert seen["critical"] < seen["high"] < seen["normal"] < seen["low"]


def test_lower_flowdsl_priority_starts_first_on_a_busy_single_thread_worker():
    """1 worker, 1 thread, more tasks submitted than it can run: Dask's own queue decides.
    The low-priority tasks are submitted first; the high-priority ones only become ready
    (and are submitted) after ``gate`` ran, while the thread is busy. If Dask honours the
    mapped priority they overtake the low ones still queued. (The sleeps are the tasks' work:
    a version that held the thread until the scheduler knew the keys instead proved flaky,
    since a worker may already hold a low task of its own queue. Each low task lasts 1 s: the
    driver must see ``gate`` end and submit the high ones while one low task runs, which took
    over 0.3 s once on a loaded 2-core CI machine.)"""
    cluster, client = _small_cluster(n_workers=1, threads_per_worker=1)
    try:
        flow = Flow("dask-priority-order")

        def make(seconds):
            def handler():
                started = time.time()
                time.sleep(seconds)
                return started
            return handler

        flow.add_task("blocker", "blocker", make(0.6), priority=Priority.CRITICAL, max_retries=0)
        flow.add_task("gate", "gate", make(0.0), priority=Priority.CRITICAL, max_retries=0)
        for i in range(3):
            flow.add_task(f"low{i}", f"low{i}", make(1.0), priority=Priority.LOW, max_retries=0)
        for i in range(3):
            flow.add_task(f"high{i}", f"high{i}", make(0.01), dependencies=["gate"],
                          priority=Priority.HIGH, max_retries=0)

        result = flow.run(executor=DaskExecutor(client, max_concurrency=16))
    finally:
        client.close()
        cluster.close()

    assert result.status is RunStatus.SUCCEEDED
    order = sorted(result.results, key=result.results.get)
    assert order[:2] == ["blocker", "gate"], order
    lows = [order.index(f"low{i}") for i in range(3)]
    highs = [order.index(f"high{i}") for i in range(3)]
    # at most one low task (started while the high ones were being submitted) goes first
    assert max(highs) < sorted(lows)[1], order


def test_max_concurrency_defaults_to_the_clusters_threads(dask_client, tmp_path):
    """Each task leaves a file (workers are other processes: files are the events) and waits
    until as many have arrived as the cluster has threads: the first ones meet only if flowdsl
    had that many in flight at once; the later ones find the meeting over and return."""
    threads = sum(dask_client.nthreads().values())
    assert threads == 4
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    flow = Flow("dask-default-concurrency")

    def make(i):
        def nap():
            started = time.time()
            (arrived / str(i)).touch()
            deadline = time.monotonic() + 30  # (then the overlap below is short of threads)
            while len(list(arrived.iterdir())) < threads and time.monotonic() < deadline:
                time.sleep(0.005)
            return started, time.time()
        return nap

    for i in range(12):
        flow.add_task(f"nap{i}", f"nap{i}", make(i), max_retries=0)

    result = flow.run(executor=DaskExecutor(dask_client))

    assert result.status is RunStatus.SUCCEEDED
    intervals = list(result.results.values())
    overlap = max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)
    assert overlap == threads, intervals


# ---------------------------------------------------------------------------------------
# Upstream futures, context copies, async handlers
# ---------------------------------------------------------------------------------------

def test_large_results_pass_between_tasks_as_upstream_futures(dask_client, monkeypatch):
    substituted: list[str] = []
    original = dask_executor.DaskAttempts._arguments

    def spy(self, step, args, kwargs):
        copy, args, kwargs, upstream = original(self, step, args, kwargs)
        if upstream:  # an argument went as the upstream attempt's future, not as bytes
            substituted.extend(step.dependencies)
        return copy, args, kwargs, upstream

    monkeypatch.setattr(dask_executor.DaskAttempts, "_arguments", spy)
    size = 5 * 1024 * 1024
    flow = Flow("dask-large-chain")

    @flow.task
    def produce():
        return bytes(range(256)) * (size // 256)

    @flow.task
    def reverse(produce):
        assert isinstance(produce, bytes)  # the value, not a future
        return produce[::-1]

    @flow.task
    def measure(reverse):
        return len(reverse), reverse[:3], reverse[-3:]

    result = flow.run(executor=DaskExecutor(dask_client))

    assert result.status is RunStatus.SUCCEEDED, {k: t.error for k, t in result.tasks.items()}
    assert len(result.results["produce"]) == size
    assert result.results["reverse"] == result.results["produce"][::-1]
    assert result.results["measure"] == (size, bytes([255, 254, 253]), bytes([2, 1, 0]))
    assert substituted == ["produce", "reverse"]


def test_context_writes_on_the_worker_become_the_tasks_delta(dask_client):
    driver_pid = os.getpid()
    flow = Flow("dask-context-copy")

    @flow.task
    def writer(context):
        context.shared_state["greeting"] = "hello"
        context.update_shared_state("count", 2)
        context.log_execution("writer", "custom_note", {"pid": os.getpid()})
        return os.getpid()

    @flow.task
    def reader(writer, context):
        return context.shared_state["greeting"], context.get_result("writer"), os.getpid()

    def seed_style(task_input):
        task_input["shared_state"]["seen"] = (task_input["reader_result"][0],
                                             task_input["count"])
        return {"previous": len(task_input["previous_results"]),
                "key": task_input["idempotency_key"]}

    flow.add_task("seed", "Seed style", seed_style, dependencies=["reader"],
                  context_requirements=["count"], max_retries=0)

    # "count" is read from the shared state as the task finds it (the initial 0 is a fallback)
    result = flow.run({"count": 0}, executor=DaskExecutor(dask_client), run_id="ctx-run")

    assert result.status is RunStatus.SUCCEEDED, {k: t.error for k, t in result.tasks.items()}
    worker_pid = result.results["writer"]
    assert worker_pid != driver_pid  # ran in a worker process
    context = result.context
    assert context.delta("writer") == {"greeting": "hello", "count": 2}
    assert context.delta("seed") == {"seen": ("hello", 2)}
    assert context.shared_state["greeting"] == "hello"
    assert context.shared_state["seen"] == ("hello", 2)
    assert result.results["reader"][:2] == ("hello", worker_pid)
    assert result.results["seed"] == {"previous": 2, "key": "ctx-run:seed"}
    notes = [e for e in context.execution_trace if e["action"] == "custom_note"]
    assert len(notes) == 1
    assert notes[0]["task_id"] == "writer"
    assert notes[0]["details"] == {"pid": worker_pid}


def test_async_handlers_run_on_the_workers_event_loop(dask_client):
    flow = Flow("dask-async")

    @flow.task
    async def on_loop():
        loop = asyncio.get_running_loop()
        worker = distributed.get_worker()
        await asyncio.sleep(0.01)
        return {"running": loop.is_running(), "worker": worker.address,
                "workers_loop": loop is worker.loop.asyncio_loop, "pid": os.getpid()}

    result = flow.run(executor=DaskExecutor(dask_client))

    assert result.status is RunStatus.SUCCEEDED, result.tasks["on_loop"].error
    seen = result.results["on_loop"]
    assert seen["running"] is True
    assert seen["workers_loop"] is True
    assert seen["worker"] in dask_client.scheduler_info()["workers"]
    assert seen["pid"] != os.getpid()


# ---------------------------------------------------------------------------------------
# Timeouts, run store and resume
# ---------------------------------------------------------------------------------------

def _spy_on_attempt_futures(monkeypatch) -> list[Any]:
    """The Dask futures of the attempts submitted while the test runs."""
    submitted: list[Any] = []
    original = distributed.Client.submit

    def spy(self, func, *args, **kwargs):
        future = original(self, func, *args, **kwargs)
        if func is dask_executor.run_on_worker:
            submitted.append(future)
        return future

    monkeypatch.setattr(distributed.Client, "submit", spy)
    return submitted


def _unretrieved_futures(caplog, before: set[int] = frozenset()) -> list[str]:
    """asyncio futures holding an exception nobody retrieved: those asyncio reports ("Future
    exception was never retrieved") when the garbage collector frees them, and those still
    alive. On Python 3.11 such a report, printed while the collector runs inside a later
    ``ast.parse``, crashes it with "SystemError: AST constructor recursion depth mismatch"
    (as pytest's terminal summary showed). An abandoned attempt must leave none behind.

    A future still unretrieved is looked at again for up to two seconds: Dask's own loops
    keep a future whose timeout has just fired (``BatchedSend`` waits on a tornado event
    with a deadline), and its coroutine retrieves it on its next step, on another thread."""
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    freed = [r.getMessage() for r in caplog.records
             if r.name == "asyncio" and "never retrieved" in r.getMessage()]
    alive = [obj for obj in gc.get_objects()
             if isinstance(obj, asyncio.Future) and id(obj) not in before
             and getattr(obj, "_log_traceback", False)]
    deadline = time.monotonic() + 2.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [obj for obj in alive if getattr(obj, "_log_traceback", False)]
    return freed + [repr(obj) for obj in alive]


def _callback_errors(caplog, futures: list[Any]) -> list[str]:
    """Errors that Dask's client logged from flowdsl's done-callbacks, once the cancellations
    have come back (e.g. "RuntimeError: Event loop is closed" when a cancelled attempt's
    notice arrives after the run's event loop ended). Dask runs a future's done-callbacks one
    after another on one thread, in the order they were queued: a callback added now runs
    after flowdsl's, so its event says flowdsl's has run."""
    called = [threading.Event() for _ in futures]
    for future, event in zip(futures, called):
        future.add_done_callback(lambda _, event=event: event.set())
    assert all(event.wait(30) for event in called), "Dask never ran the done-callbacks"
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("distributed") and "Error in callback" in r.getMessage()]


def _futures_now(caplog) -> set[int]:
    """The asyncio futures alive now, after freeing what earlier tests left (whose reports,
    if any, are not this test's)."""
    gc.collect()
    caplog.clear()
    return {id(obj) for obj in gc.get_objects() if isinstance(obj, asyncio.Future)}


def test_a_timed_out_attempt_is_cancelled_and_retried(dask_client, tmp_path, monkeypatch,
                                                      caplog):
    before = _futures_now(caplog)
    submitted = _spy_on_attempt_futures(monkeypatch)
    release = tmp_path / "release"
    flow = Flow("dask-timeout")

    @flow.task(timeout=0.5, retries=1, retry_wait=0)
    def sleepy():
        for _ in range(50):  # 5 s, unless the test releases the worker thread earlier
            if release.exists():
                break
            time.sleep(0.1)
        return "late"

    try:
        result = flow.run(executor=DaskExecutor(dask_client), raise_on_failure=False)
    finally:
        release.write_text("x")  # give the worker threads back to the shared cluster

    task = result.tasks["sleepy"]
    assert task.status is TaskStatus.FAILED
    assert isinstance(task.error, TaskTimeoutError)
    assert "sleepy" in str(task.error)
    assert task.attempts == 2
    assert task.duration < 4.0
    assert len(submitted) == 2  # one Dask key per attempt
    assert len({f.key for f in submitted}) == 2
    assert all(f.status == "cancelled" for f in submitted), [f.status for f in submitted]
    assert "sleepy" not in result.results
    assert _callback_errors(caplog, submitted) == []
    assert _unretrieved_futures(caplog, before) == []


def test_a_critical_failure_cancels_attempts_in_flight(dask_client, tmp_path, monkeypatch,
                                                       caplog):
    before = _futures_now(caplog)
    submitted = _spy_on_attempt_futures(monkeypatch)
    release, started = tmp_path / "release", tmp_path / "started"
    flow = Flow("dask-critical-stop")

    @flow.task
    def slow():
        started.write_text("x")
        for _ in range(50):
            if release.exists():
                break
            time.sleep(0.1)
        return "late"

    @flow.task(priority=Priority.CRITICAL)
    def critical():
        for _ in range(500):  # (workers are other processes: a file is the event)
            if started.exists():  # slow is running
                break
            time.sleep(0.01)
        raise RuntimeError("boom")

    @flow.task
    def later(critical):
        return critical

    try:
        result = flow.run(executor=DaskExecutor(dask_client), raise_on_failure=False)
    finally:
        release.write_text("x")

    assert result.status is RunStatus.FAILED
    assert result.tasks["critical"].status is TaskStatus.FAILED
    assert result.tasks["later"].status is TaskStatus.SKIPPED
    slow_run = result.tasks["slow"]
    assert slow_run.status is TaskStatus.CANCELLED
    assert "critical" in slow_run.reason
    slow_futures = [f for f in submitted if str(f.key).startswith("slow-")]
    assert len(slow_futures) == 1 and slow_futures[0].status == "cancelled"
    assert _callback_errors(caplog, submitted) == []
    assert _unretrieved_futures(caplog, before) == []


def test_resume_on_dask_does_not_rerun_completed_tasks(dask_client, tmp_path):
    fixed = tmp_path / "fixed"
    counts = tmp_path / "counts"
    counts.mkdir()
    flow = Flow("dask-resume")

    def count(name):
        with open(counts / name, "a") as fh:
            fh.write("x\n")

    @flow.task
    def extract(source):
        count("extract")
        return [source, 1, 2, 3]

    @flow.task(produces=["total"])
    def transform(extract):
        count("transform")
        if not fixed.exists():
            raise RuntimeError("not fixed yet")
        return {"total": sum(extract[1:])}

    @flow.task
    def load(transform, total):
        count("load")
        return f"loaded {total}"

    store = tmp_path / "runs.db"
    first = flow.run({"source": "s.csv"}, executor=DaskExecutor(dask_client), store=store,
                     run_id="r1", raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    assert first.tasks["transform"].status is TaskStatus.FAILED
    assert first.tasks["load"].status is TaskStatus.SKIPPED

    fixed.write_text("x")
    resumed = flow.run(executor=DaskExecutor(dask_client), store=store, resume="r1", raise_on_failure=False)

    assert resumed.status is RunStatus.SUCCEEDED, {k: t.error for k, t in resumed.tasks.items()}
    assert resumed.tasks["extract"].reason == "restored from the run store"
    assert len(_lines(counts / "extract")) == 1  # not re-run
    assert len(_lines(counts / "transform")) == 2  # failed once, then ran again
    assert len(_lines(counts / "load")) == 1
    fresh = flow.run({"source": "s.csv"}, raise_on_failure=False)
    assert resumed.results == fresh.results
    assert resumed.context.shared_state == fresh.context.shared_state


def test_without_a_client_a_local_cluster_is_started_and_closed(monkeypatch):
    started: list[Any] = []
    clients: list[Any] = []

    class RecordedCluster(distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            kwargs.update(n_workers=1, threads_per_worker=2, dashboard_address=":0")
            super().__init__(*args, **kwargs)
            started.append(self)

    class RecordedClient(distributed.Client):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(dask_executor, "LocalCluster", RecordedCluster)
    monkeypatch.setattr(dask_executor, "Client", RecordedClient)
    flow = Flow("dask-own-cluster")

    @flow.task
    def where():
        return distributed.get_worker().address

    @flow.task
    def twice(where):
        return where * 2

    result = flow.run(executor=DaskExecutor())

    assert result.status is RunStatus.SUCCEEDED, {k: t.error for k, t in result.tasks.items()}
    assert result.results["where"].startswith("tcp://")
    assert result.results["twice"] == result.results["where"] * 2
    assert len(started) == 1 and len(clients) == 1
    assert started[0].status.name == "closed"
    assert clients[0].status == "closed"


def test_a_flowdsl_version_mismatch_on_the_workers_is_refused_before_any_task(
        dask_client, tmp_path, monkeypatch):
    side_effect = tmp_path / "ran"
    flow = Flow("dask-version-check")

    @flow.task
    def only():
        side_effect.write_text("ran")

    monkeypatch.setattr(dask_executor.version, "__version__", "0.0.0-not-the-workers")

    with pytest.raises(flowdsl.FlowError) as caught:
        flow.run(executor=DaskExecutor(dask_client))

    assert "version" in str(caught.value)
    assert "0.0.0-not-the-workers" in str(caught.value)
    assert not side_effect.exists()


def test_importing_flowdsl_does_not_import_dask():
    import subprocess
    import sys

    code = ("import sys, flowdsl; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"
