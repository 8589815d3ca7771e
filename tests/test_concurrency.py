"""Concurrency (issue 5 and DESIGN.md "Concurrency"): ordering, slots and pools, determinism,
critical stop and Ctrl-C with tasks in flight, retry waits, adaptive scheduling, context
accuracy. No test asserts a speed; where order matters, Events and Barriers make it certain.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowdsl
from flowdsl import (
    ConcurrentExecutor,
    ContextPreservationStrategy,
    DefinitionError,
    Flow,
    Priority,
    RunFailedError,
    RunStatus,
    TaskStatus,
    TaskTimeoutError,
)

LONG = 5.0  # seconds: how long a blocked handler waits before giving up on its own
NAP = 0.2  # seconds: a handler's sleep when intervals must visibly overlap


class Boom(Exception):
    pass


def names(text, task_id):
    """True when ``text`` mentions ``task_id`` as a whole identifier."""
    return text is not None and re.search(rf"(?<![\w]){re.escape(task_id)}(?![\w])", text) is not None


def start_order(result, ids=None):
    ids = list(result.tasks) if ids is None else ids
    ran = [t for t in ids if result.tasks[t].started_at is not None]
    return sorted(ran, key=lambda t: result.tasks[t].started_at)


class RecordingStrategy(ContextPreservationStrategy):
    """A user's own strategy: remembers which tasks its hooks were called for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.preserved = []
        self.restored = []

    def preserve_context(self, context, task):
        with self.lock:
            self.preserved.append(task.id)

    def restore_context(self, context, task):
        with self.lock:
            self.restored.append(task.id)


class Tracker:
    """Thread-safe count of the handlers running at once, overall and per pool."""

    def __init__(self, pools):
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.pool_active = dict.fromkeys(pools, 0)
        self.pool_peak = dict.fromkeys(pools, 0)

    def enter(self, pool):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            if pool is not None:
                self.pool_active[pool] += 1
                self.pool_peak[pool] = max(self.pool_peak[pool], self.pool_active[pool])

    def leave(self, pool):
        with self.lock:
            self.active -= 1
            if pool is not None:
                self.pool_active[pool] -= 1


# ---------------------------------------------------------------------------------------
# Random DAGs
# ---------------------------------------------------------------------------------------

class Injected(Exception):
    pass


def make_handler(task, holder):
    """A handler that counts itself in the tracker, sleeps, fails on the attempts in
    ``fail_on`` and otherwise returns (and produces) a value built from what it received."""
    tid, deps, reads = task["id"], task["deps"], task["reads"]
    fail_on, pool, duration = task["fail_on"], task["pool"], task["duration"]

    def compute(task_input):
        attempt = flowdsl.current_task().attempt
        if attempt in fail_on:
            raise Injected(f"{tid} attempt {attempt}")
        inner = ",".join(task_input[f"{d}_result"]["out"] for d in deps)
        inner += "|" + ",".join(f"{k}={task_input[k]}" for k in reads)
        return {"out": f"{tid}({inner})", f"k_{tid}": f"v_{tid}({inner})"}

    if task["is_async"]:
        async def handler(task_input):
            tracker = holder["tracker"]
            tracker.enter(pool)
            try:
                await asyncio.sleep(duration)
                return compute(task_input)
            finally:
                tracker.leave(pool)
    else:
        def handler(task_input):
            tracker = holder["tracker"]
            tracker.enter(pool)
            try:
                time.sleep(duration)
                return compute(task_input)
            finally:
                tracker.leave(pool)
    return handler


def build_flow(name, tasks, pools, holder):
    flow = Flow(name, pools=pools)
    for task in tasks:
        flow.task(
            id=task["id"], depends_on=list(task["deps"]), priority=task["priority"],
            requires=[f"k_{r}" for r in task["read_from"]], produces=[f"k_{task['id']}"],
            retries=task["retries"], retry_wait=0, pool=task["pool"],
        )(make_handler(task, holder))
    return flow


@st.composite
def random_dags(draw):
    pool_names = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=2))
    pools = {name: draw(st.integers(1, 2)) for name in pool_names}
    n = draw(st.integers(1, 25))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        deps = [f"t{d}" for d in deps]
        read_from = draw(st.lists(st.sampled_from(deps), unique=True, max_size=2)) if deps else []
        tasks.append({
            "id": f"t{i}",
            "deps": tuple(deps),
            "read_from": tuple(read_from),
            "reads": tuple(f"k_{r}" for r in read_from),
            "retries": draw(st.integers(0, 1)),
            "fail_on": draw(st.frozensets(st.integers(1, 2), max_size=2)),
            "priority": draw(st.sampled_from([Priority.HIGH, Priority.NORMAL, Priority.LOW])),
            "is_async": draw(st.booleans()),
            "pool": draw(st.sampled_from([None, *pool_names])),
            "duration": draw(st.integers(0, 5)) / 1000,
        })
    return tasks, pools


def outcome(result):
    return (
        {t: r.status for t, r in result.tasks.items()},
        {t: r.attempts for t, r in result.tasks.items()},
        dict(result.results),
        dict(result.context.shared_state),
    )


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=random_dags(), n=st.sampled_from([2, 3, 5]))
def test_random_dags_keep_order_caps_and_outcome_of_the_sequential_run(dag, n):
    tasks, pools = dag
    holder = {}
    flow = build_flow("random", tasks, pools, holder)

    holder["tracker"] = Tracker(pools)
    sequential = flow.run(max_concurrency=1, raise_on_failure=False)
    assert holder["tracker"].peak <= 1

    for _ in range(2):  # the second run has history: adaptive scheduling reorders
        tracker = holder["tracker"] = Tracker(pools)
        result = flow.run(max_concurrency=n, raise_on_failure=False)

        assert tracker.peak <= n, f"max_concurrency={n} exceeded: {tracker.peak} at once"
        for pool, size in pools.items():
            assert tracker.pool_peak[pool] <= size, \
                f"pool {pool!r} of size {size} exceeded: {tracker.pool_peak[pool]} at once"
        for task in tasks:
            run = result.tasks[task["id"]]
            if run.started_at is None:
                continue
            for dep in task["deps"]:
                assert result.tasks[dep].ended_at is not None
                assert result.tasks[dep].ended_at <= run.started_at, \
                    f"{task['id']} started before its dependency {dep} ended"
        assert outcome(result) == outcome(sequential)
        assert result.status is sequential.status


# ---------------------------------------------------------------------------------------
# Tasks really overlap
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_four_independent_sleeping_tasks_overlap_at_n4(is_async):
    flow = Flow("overlap")
    arrived: list[int] = []  # async: the four count themselves in; sync: they meet at a barrier
    barrier = threading.Barrier(4, timeout=LONG)
    for i in range(4):
        if is_async:
            async def nap(i=i):
                arrived.append(i)
                deadline = time.monotonic() + LONG
                while len(arrived) < 4:
                    assert time.monotonic() < deadline, "the four tasks never ran together"
                    await asyncio.sleep(0.001)
                await asyncio.sleep(NAP)  # then work together for a while
                return "done"
        else:
            def nap():
                barrier.wait()
                time.sleep(NAP)  # then work together for a while
                return "done"
        flow.task(id=f"nap{i}")(nap)

    result = flow.run(max_concurrency=4)

    assert result.status is RunStatus.SUCCEEDED
    runs = list(result.tasks.values())
    assert max(r.started_at for r in runs) < min(r.ended_at for r in runs), \
        "the four tasks' [started_at, ended_at] intervals do not all intersect"
    # handler time is the union of the intervals, not their sum (which exceeds the wall time
    # here, and would clamp the figure to 0): the overhead is positive
    assert result.summary["orchestration_overhead_per_task"] > 0.0


def test_current_task_and_idempotency_key_are_right_in_every_concurrent_task():
    flow = Flow("current")
    for i in range(12):
        if i % 2:
            async def which(task_input, i=i):
                await asyncio.sleep(0.001 * (i % 4))
                current = flowdsl.current_task()
                return current.task_id, current.idempotency_key, task_input["idempotency_key"]
        else:
            def which(task_input, i=i):
                time.sleep(0.001 * (i % 4))
                current = flowdsl.current_task()
                return current.task_id, current.idempotency_key, task_input["idempotency_key"]
        flow.task(id=f"t{i}")(which)

    result = flow.run(max_concurrency=4, run_id="r1")

    for i in range(12):
        key = f"r1:t{i}"
        assert result.results[f"t{i}"] == (f"t{i}", key, key)


# ---------------------------------------------------------------------------------------
# Critical stop with tasks in flight
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("worker_timeout", [None, LONG], ids=["pool-thread", "own-thread"])
def test_critical_failure_cancels_async_in_flight_and_waits_for_sync(worker_timeout):
    flow = Flow("critical-stop")
    strategy = RecordingStrategy()
    waiter_started, worker_started = threading.Event(), threading.Event()
    crit_raised, waiter_cancelled = threading.Event(), threading.Event()

    @flow.task(priority=Priority.CRITICAL)
    async def crit():
        deadline = time.monotonic() + LONG
        while not (waiter_started.is_set() and worker_started.is_set()):
            assert time.monotonic() < deadline, "the siblings never started"
            await asyncio.sleep(0.002)
        crit_raised.set()
        raise Boom("critical failure")

    @flow.task
    async def waiter():
        waiter_started.set()
        try:
            await asyncio.wait_for(asyncio.Event().wait(), LONG)
        except asyncio.CancelledError:
            waiter_cancelled.set()
            raise
        return "not cancelled"

    @flow.task(timeout=worker_timeout)
    def worker():
        worker_started.set()
        assert crit_raised.wait(LONG)
        # still in flight while the run handles the critical failure (it cancels the waiter)
        assert waiter_cancelled.wait(LONG)
        return "worker done"

    @flow.task
    def after_crit(crit):
        return "never"

    @flow.task
    def after_worker(worker):
        return "never"

    @flow.task
    def after_waiter(waiter):
        return "never"

    @flow.task(priority=Priority.LOW)
    def queued():  # ready from the start, but all 3 slots are taken
        return "never"

    result = flow.run(max_concurrency=3, context_strategy=strategy, raise_on_failure=False)
    tasks = result.tasks

    assert result.status is RunStatus.FAILED
    with pytest.raises(RunFailedError):
        result.raise_for_status()
    assert tasks["crit"].status is TaskStatus.FAILED
    assert isinstance(tasks["crit"].error, Boom)

    # the async sibling in flight: cancelled, no record, no restore_context
    assert waiter_cancelled.is_set()
    assert tasks["waiter"].status is TaskStatus.CANCELLED
    assert names(tasks["waiter"].reason, "crit"), tasks["waiter"].reason
    assert "waiter" not in result.results
    assert "waiter" not in result.context.records
    assert "waiter" in strategy.preserved
    assert "waiter" not in strategy.restored

    # the sync sibling in flight: waited for, its outcome recorded
    assert tasks["worker"].status is TaskStatus.COMPLETED
    assert result.results["worker"] == "worker done"
    assert "worker" in result.context.records
    assert "worker" in strategy.restored
    assert sorted(strategy.restored) == ["crit", "worker"]

    # downstream of the critical task: SKIPPED; everything not started: CANCELLED
    assert tasks["after_crit"].status is TaskStatus.SKIPPED
    assert names(tasks["after_crit"].reason, "crit")
    for tid in ("after_worker", "after_waiter", "queued"):
        assert tasks[tid].status is TaskStatus.CANCELLED, tid
        assert names(tasks[tid].reason, "crit"), (tid, tasks[tid].reason)
        assert tasks[tid].started_at is None
        assert tid not in strategy.preserved
    assert result.summary["cancelled_tasks"] == 4
    assert result.summary["skipped_tasks"] == 1


# ---------------------------------------------------------------------------------------
# Ctrl-C with tasks in flight
# ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_under_concurrency_cancels_in_flight_and_pending():
    flow = Flow("ctrl-c-concurrent")
    strategy = RecordingStrategy()
    main = threading.main_thread().ident
    release = threading.Event()
    async_started, sync_started = threading.Event(), threading.Event()
    late_write_done = threading.Event()

    @flow.task
    def first():
        return "kept"

    @flow.task(priority=Priority.HIGH)
    async def sibling_async():
        async_started.set()
        await asyncio.wait_for(asyncio.Event().wait(), LONG)
        return "late"

    @flow.task
    def sibling_sync(context):
        sync_started.set()
        release.wait(LONG)
        try:
            context.shared_state["late"] = "after the interrupt"
        finally:
            late_write_done.set()
        return "late"

    @flow.task
    def interrupter(first):
        assert async_started.wait(LONG) and sync_started.wait(LONG)
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C does
        release.wait(LONG)
        return "late"

    @flow.task
    def pending(interrupter):
        return "never"

    @flow.task(priority=Priority.LOW)
    def queued():  # ready from the start, but the 3 slots stay taken
        return "never"

    try:
        with pytest.raises(KeyboardInterrupt) as info:
            flow.run(max_concurrency=3, context_strategy=strategy)
    finally:
        release.set()
    assert late_write_done.wait(LONG)

    result = info.value.flowdsl_result
    tasks = result.tasks
    assert result.status is RunStatus.CANCELLED
    assert tasks["first"].status is TaskStatus.COMPLETED
    assert result.results["first"] == "kept"
    for tid in ("sibling_async", "sibling_sync", "interrupter", "pending", "queued"):
        assert tasks[tid].status is TaskStatus.CANCELLED, tid
        assert tid not in result.results
    for tid in ("sibling_async", "sibling_sync", "interrupter"):
        assert tid not in result.context.records
        assert tid not in strategy.restored
    assert "late" not in result.context.shared_state  # written after the run was cancelled


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_discards_what_a_cancelled_async_attempt_writes_while_unwinding():
    """DESIGN "Concurrency": writes made after the run was cancelled are discarded; that
    includes what an async handler writes in its ``except CancelledError`` / ``finally``
    once Ctrl-C has cancelled it."""
    flow = Flow("ctrl-c-unwinding")
    main = threading.main_thread().ident
    started, release = threading.Event(), threading.Event()

    @flow.task
    async def sibling_async(context):
        started.set()
        try:
            await asyncio.wait_for(asyncio.Event().wait(), LONG)
        except asyncio.CancelledError:
            context.shared_state["unwinding"] = "after the interrupt"
            raise
        return "late"

    @flow.task
    def interrupter():
        assert started.wait(LONG)
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C does
        release.wait(LONG)

    try:
        with pytest.raises(KeyboardInterrupt) as info:
            flow.run(max_concurrency=2)
    finally:
        release.set()

    result = info.value.flowdsl_result
    assert result.status is RunStatus.CANCELLED
    assert result.tasks["sibling_async"].status is TaskStatus.CANCELLED
    assert "unwinding" not in result.context.shared_state, \
        "a write made after the run was cancelled was kept"


# ---------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------

def test_unknown_pool_is_a_definition_error_naming_task_and_pool():
    flow = Flow("pools", pools={"db": 2})

    @flow.task(pool="dbb")
    def query():
        return 1

    with pytest.raises(DefinitionError) as info:
        flow.compile()
    assert names(str(info.value), "query") and names(str(info.value), "dbb")
    with pytest.raises(DefinitionError):
        flow.run(max_concurrency=2)


@pytest.mark.parametrize("size", [0, -1, "2", 1.5, None])
def test_pool_size_must_be_an_int_of_at_least_one(size):
    with pytest.raises(DefinitionError):
        Flow("pools", pools={"db": size})
    flow = Flow("pools")
    with pytest.raises(DefinitionError):
        flow.pool("db", size)


def test_pool_declared_with_flow_pool_is_honoured():
    flow = Flow("pools")
    flow.pool("db", 2)
    tracker = Tracker({"db": 2})

    def met() -> bool:  # two db tasks ran at once (polled with a deadline, not slept for)
        return tracker.pool_peak["db"] >= 2

    for i in range(6):
        if i % 2:
            async def query():
                tracker.enter("db")
                try:
                    deadline = time.monotonic() + LONG
                    while not met() and time.monotonic() < deadline:
                        await asyncio.sleep(0.001)
                finally:
                    tracker.leave("db")
        else:
            def query():
                tracker.enter("db")
                try:
                    deadline = time.monotonic() + LONG
                    while not met() and time.monotonic() < deadline:
                        time.sleep(0.001)
                finally:
                    tracker.leave("db")
        flow.task(id=f"q{i}", pool="db")(query)

    result = flow.run(max_concurrency=5)

    assert result.status is RunStatus.SUCCEEDED
    assert tracker.pool_peak["db"] == 2


@pytest.mark.parametrize("free_pool", [None, "api"], ids=["no-pool", "other-pool"])
def test_a_task_waiting_for_a_full_pool_does_not_block_other_ready_tasks(free_pool):
    flow = Flow("pool-skip", pools={"db": 1, "api": 1})

    free_ran = threading.Event()
    seen = {}

    @flow.task(pool="db", priority=Priority.HIGH)
    def db1():  # holds the db pool until the free task ran (or LONG passed: the test fails)
        seen["free_ran_while_db1_held_the_pool"] = free_ran.wait(LONG)

    @flow.task(pool="db", priority=Priority.HIGH)
    def db2():
        return "db2"

    @flow.task(pool=free_pool, priority=Priority.LOW)  # behind db2 in the ready queue
    def free():
        free_ran.set()
        return "free"

    result = flow.run(max_concurrency=2)
    tasks = result.tasks

    assert result.status is RunStatus.SUCCEEDED
    assert seen["free_ran_while_db1_held_the_pool"] is True, \
        "the free task did not run while db1 held the pool (it waited behind db2)"
    assert tasks["db2"].started_at >= tasks["db1"].ended_at  # the pool cap
    assert tasks["free"].started_at < tasks["db1"].ended_at, \
        "the free task waited behind db2, which waited for the full pool"


def test_abandoned_sync_attempt_keeps_its_pool_slot_but_frees_its_concurrency_slot():
    """N=2, pool db of size 1. ``slow`` times out while its thread still runs: both free
    tasks must then run together (they meet at a barrier: impossible unless the slot was
    freed at the timeout), while ``next_db`` must wait until the abandoned thread ends."""
    flow = Flow("abandoned", pools={"db": 1})
    release, thread_done = threading.Event(), threading.Event()
    barrier = threading.Barrier(2, timeout=LONG)
    seen = {}

    @flow.task(pool="db", priority=Priority.HIGH, timeout=NAP)
    def slow():
        release.wait(LONG)
        time.sleep(0.05)
        thread_done.set()
        return "late"

    @flow.task(pool="db")
    def next_db():
        seen["thread_done_when_next_db_started"] = thread_done.is_set()
        return "db again"

    @flow.task(priority=Priority.LOW)
    def free_a():
        barrier.wait()
        release.set()
        return "a"

    @flow.task(priority=Priority.LOW)
    def free_b():
        barrier.wait()
        release.set()
        return "b"

    try:
        result = flow.run(max_concurrency=2, raise_on_failure=False)
    finally:
        release.set()
    tasks = result.tasks

    assert tasks["slow"].status is TaskStatus.FAILED
    assert isinstance(tasks["slow"].error, TaskTimeoutError)
    assert tasks["free_a"].status is TaskStatus.COMPLETED, tasks["free_a"].error
    assert tasks["free_b"].status is TaskStatus.COMPLETED, tasks["free_b"].error
    assert tasks["free_b"].started_at < tasks["free_a"].ended_at  # they overlapped
    assert tasks["next_db"].status is TaskStatus.COMPLETED
    assert seen["thread_done_when_next_db_started"] is True, \
        "next_db took the pool slot while the abandoned thread was still running"


# ---------------------------------------------------------------------------------------
# Retry waits
# ---------------------------------------------------------------------------------------

def test_a_retry_wait_releases_the_slot():
    """N=2: while ``flaky`` waits 0.2 s before its retry, ``a`` and ``b`` run together
    (they meet at a barrier), which needs the slot ``flaky`` held during its attempt."""
    flow = Flow("retry-wait")
    barrier = threading.Barrier(2, timeout=LONG)
    attempts = []

    @flow.task(priority=Priority.HIGH, retries=1, retry_wait=0.2)
    async def flaky():
        attempts.append(time.perf_counter())
        if len(attempts) == 1:
            raise Boom("first attempt fails")
        return "second attempt"

    @flow.task(priority=Priority.LOW)
    def a():
        barrier.wait()
        return "a"

    @flow.task(priority=Priority.LOW)
    def b():
        barrier.wait()
        return "b"

    result = flow.run(executor=ConcurrentExecutor(2))
    tasks = result.tasks

    assert result.status is RunStatus.SUCCEEDED, {t: r.error for t, r in tasks.items()}
    assert tasks["flaky"].attempts == 2
    for tid in ("a", "b"):
        assert tasks[tid].started_at >= tasks["flaky"].started_at
        assert tasks[tid].ended_at <= tasks["flaky"].ended_at, \
            f"{tid} did not run during flaky's retry wait"


# ---------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------

def determinism_flow(seed=5, n=30):
    """A 30-task DAG: produced keys read downstream, direct writes to task-own keys, a chain
    of ordered tasks writing one key directly, a deletion, failures (none critical)."""
    rng = random.Random(seed)
    flow = Flow("determinism")
    chain_tasks = set(range(0, n, 6))  # t0 -> t6 -> t12 ... (made ordered below)
    previous_chain = None
    for i in range(n):
        tid = f"t{i}"
        deps = sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) if i else []
        if i in chain_tasks and previous_chain is not None and previous_chain not in deps:
            deps.append(previous_chain)
        deps = [f"t{d}" for d in deps]
        reads = [f"k{d[1:]}" for d in deps[:2]]
        fails = rng.random() < 0.1
        is_async = rng.random() < 0.5
        sleep = rng.randint(0, 3) / 1000
        in_chain = i in chain_tasks
        if in_chain:
            previous_chain = i

        def body(task_input, tid=tid, deps=tuple(deps), reads=tuple(reads), fails=fails,
                 in_chain=in_chain):
            if fails:
                raise Boom(tid)
            context = task_input["context"]
            got = [task_input[f"{d}_result"] for d in deps] + [task_input[k] for k in reads]
            context.update_shared_state(f"direct_{tid}", len(got))
            if in_chain:
                context.shared_state["chain"] = tid
                context.shared_state.pop("to_delete", None)
            return {"k" + tid[1:]: f"{tid}:{got}", "value": hash(tuple(map(str, got))) % 1000}

        if is_async:
            async def handler(task_input, body=body, sleep=sleep):
                await asyncio.sleep(sleep)
                return body(task_input)
        else:
            def handler(task_input, body=body, sleep=sleep):
                time.sleep(sleep)
                return body(task_input)
        flow.task(id=tid, depends_on=deps, requires=reads, produces=["k" + tid[1:]],
                  priority=rng.choice([Priority.HIGH, Priority.NORMAL, Priority.LOW]))(handler)
    return flow


def test_results_and_final_shared_state_are_the_same_for_n_1_2_8():
    flow = determinism_flow()
    initial = {"to_delete": "x"}
    outcomes = {n: outcome(flow.run(initial, max_concurrency=n, raise_on_failure=False)) for n in (1, 2, 8)}
    statuses = outcomes[1][0]
    assert TaskStatus.FAILED in statuses.values() and TaskStatus.COMPLETED in statuses.values()
    assert outcomes[2] == outcomes[1]
    assert outcomes[8] == outcomes[1]
    # and again with history known (adaptive scheduling reorders)
    assert outcome(flow.run(initial, max_concurrency=8, raise_on_failure=False)) == outcomes[1]


# ---------------------------------------------------------------------------------------
# Adaptive scheduling
# ---------------------------------------------------------------------------------------

def sleeper(seconds):
    async def handler():
        await asyncio.sleep(seconds)
        return seconds
    return handler


def skewed_flow(urgent=False):
    """Three short roots declared first, then the head of a long chain; all NORMAL. (A sleep
    lasts at least its time and the short ones do no work: a long task's measured duration
    exceeds a short one's however loaded the machine.)"""
    flow = Flow("skewed")
    for i in range(1, 4):
        flow.task(id=f"s{i}")(sleeper(0.0))
    flow.task(id="L")(sleeper(0.06))
    flow.task(id="L2", depends_on=["L"])(sleeper(0.06))
    if urgent:
        flow.task(id="urgent", priority=Priority.HIGH)(sleeper(0.001))
    return flow


def test_explain_schedule_before_any_run_has_no_history():
    flow = skewed_flow()
    plan = flow.compile()
    info = flow.explain_schedule()
    assert info["history_known"] is False
    for entry in info["tasks"].values():
        assert entry["history"] == []
        assert entry["expected"] == 0.0
        assert entry["critical_path"] == 0.0
    assert info["critical_path_length"] == 0.0
    chain = info["critical_path"]
    # all ties: the first root in plan order, then each first child in plan order
    roots = [t for t in plan.order if not plan.index[t].dependencies]
    assert chain[0] == roots[0]
    for parent, child in zip(chain, chain[1:]):
        assert child in plan.children[parent]
    assert not plan.children[chain[-1]]


def test_explain_schedule_after_a_run_uses_durations():
    flow = Flow("explain")
    flow.task(id="root")(sleeper(0.001))
    flow.task(id="short", depends_on=["root"])(sleeper(0.0))
    flow.task(id="long", depends_on=["root"])(sleeper(0.08))
    flow.run()
    info = flow.explain_schedule()
    tasks = info["tasks"]
    assert info["history_known"] is True
    assert len(tasks["long"]["history"]) == 1
    assert tasks["long"]["expected"] > tasks["short"]["expected"]
    assert tasks["long"]["critical_path"] > tasks["short"]["critical_path"]
    assert tasks["root"]["critical_path"] == pytest.approx(
        tasks["root"]["expected"] + tasks["long"]["critical_path"])
    assert info["critical_path"] == ["root", "long"]
    assert info["critical_path_length"] == pytest.approx(tasks["root"]["critical_path"])


def test_a_task_without_history_counts_as_the_median_of_those_with_one():
    flow = Flow("median")
    flow.task(id="a")(sleeper(0.0))
    flow.task(id="b")(sleeper(0.05))
    flow.task(id="c")(sleeper(0.15))
    flow.run()
    flow.task(id="new")(sleeper(0.0))
    tasks = flow.explain_schedule()["tasks"]
    assert tasks["new"]["history"] == []
    assert tasks["new"]["expected"] == pytest.approx(tasks["b"]["expected"])


def test_explain_schedule_reads_the_run_store_history(tmp_path):
    store = tmp_path / "runs.db"
    skewed_flow().run(store=str(store), max_concurrency=2)
    fresh = skewed_flow()  # another Flow object: no history of its own
    assert fresh.explain_schedule()["history_known"] is False
    info = fresh.explain_schedule(store=str(store))
    assert info["history_known"] is True
    assert info["tasks"]["L"]["critical_path"] > info["tasks"]["s1"]["critical_path"]


def test_with_history_the_longest_critical_path_starts_first():
    flow = skewed_flow()
    roots = ["s1", "s2", "s3", "L"]

    first = flow.run(max_concurrency=2)
    assert first.status is RunStatus.SUCCEEDED
    assert start_order(first, roots) == roots  # no history: plan order

    second = flow.run(max_concurrency=2)
    assert second.status is RunStatus.SUCCEEDED
    order = start_order(second, roots)
    assert order[0] == "L", order
    # (the short ones follow in the order of their measured durations, which is noise)

    unadaptive = flow.run(max_concurrency=2, adaptive=False)
    assert start_order(unadaptive, roots) == roots


def test_priority_still_wins_over_the_critical_path():
    flow = skewed_flow(urgent=True)
    flow.run(max_concurrency=2)
    second = flow.run(max_concurrency=2)
    order = start_order(second, ["s1", "s2", "s3", "L", "urgent"])
    assert order[:2] == ["urgent", "L"], order


# ---------------------------------------------------------------------------------------
# Context accuracy
# ---------------------------------------------------------------------------------------

def test_declared_inputs_get_the_producers_value_despite_a_concurrent_direct_write():
    flow = Flow("accuracy")
    produced, overwritten = threading.Event(), threading.Event()

    @flow.task(produces=["k"])
    def producer():
        return {"k": "from producer"}

    @flow.task(depends_on=["producer"])
    def marker():  # runs once the producer's write is in the shared state
        produced.set()

    @flow.task
    async def intruder(context):  # not related to the readers
        deadline = time.monotonic() + LONG
        while not produced.is_set():
            assert time.monotonic() < deadline, "the producer never ran"
            await asyncio.sleep(0.002)
        context.shared_state["k"] = "from intruder"
        overwritten.set()

    @flow.task
    def gate():
        assert overwritten.wait(LONG)

    @flow.task(depends_on=["producer", "gate"], requires=["k"])
    def reader_requires(task_input):
        return task_input["k"], task_input["shared_state"]["k"]

    @flow.task(depends_on=["gate"])
    async def reader_param(producer, k):
        return k

    result = flow.run(max_concurrency=4)

    assert result.status is RunStatus.SUCCEEDED, {t: r.error for t, r in result.tasks.items()}
    assert result.results["reader_requires"] == ("from producer", "from intruder")
    assert result.results["reader_param"] == "from producer"
    assert result.context.records["reader_param"].reads == {"k": "from producer"}
