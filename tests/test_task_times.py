"""Issue 11, newcomer 6 (DESIGN "A newcomer's first hour", Times): a task's ``started_at`` is
never before the run's start and its ``duration`` never negative: on every executor, for tasks
that completed, failed, were skipped, or were cancelled in flight, in the result and in the
store."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from flowdsl import ConcurrentExecutor, Flow, Priority, TaskStatus

LONG = 5.0


def stored_times(path):
    conn = sqlite3.connect(path)
    try:
        run_start, = conn.execute("SELECT started FROM runs").fetchone()
        rows = conn.execute("SELECT task_id, status, started, ended, duration FROM tasks").fetchall()
    finally:
        conn.close()
    return run_start, rows


def assert_sane(result, path):
    run_start, rows = stored_times(path)
    assert rows, "nothing stored"
    for task_id, status, started, ended, duration in rows:
        if started is not None:
            assert started >= run_start, (task_id, status, started - run_start)
            assert ended is None or ended >= started, (task_id, status)
        assert_duration(task_id, started, ended, duration)
    for task_id, task in result.tasks.items():
        if task.started_at is not None:
            assert task.started_at >= run_start, (task_id, task.started_at - run_start)
            assert task.ended_at is None or task.ended_at >= task.started_at, task_id
        assert_duration(task_id, task.started_at, task.ended_at, task.duration)


def assert_duration(task_id, started, ended, duration):
    """A task that started and ended took ``ended - started`` (a duration clamped at 0 would
    hide a start time after the end; "duration >= 0" could not fail); one that never started
    took no time."""
    if started is None:
        assert duration in (None, 0.0), (task_id, duration)
    elif ended is not None and duration is not None:
        assert duration == pytest.approx(ended - started, abs=1e-6), (task_id, duration)


def test_times_of_every_outcome_are_sane_in_the_result_and_the_store(run_flow, tmp_path):
    flow = Flow("times-every-outcome")

    @flow.task
    def ok():
        return 1

    @flow.task
    def fails(ok):
        raise ValueError("no")

    @flow.task
    def skipped(fails):
        return "never"

    @flow.task
    async def ok_async(ok):
        await asyncio.sleep(0)
        return 2

    path = tmp_path / "runs.db"
    result = run_flow(flow, store=str(path), raise_on_failure=False)
    assert result.tasks["skipped"].status is TaskStatus.SKIPPED
    assert_sane(result, path)


def test_times_of_a_task_cancelled_in_flight_are_sane_at_n_above_1(tmp_path):
    flow = Flow("times-cancelled-in-flight")
    started = asyncio.Event()

    @flow.task(priority=Priority.CRITICAL)
    async def crit():
        await asyncio.wait_for(started.wait(), LONG)
        raise RuntimeError("critical failure")

    @flow.task
    async def waiter():
        started.set()
        await asyncio.sleep(LONG)
        return "not cancelled"

    path = tmp_path / "runs.db"
    result = flow.run(store=str(path), executor=ConcurrentExecutor(2), raise_on_failure=False)
    assert result.tasks["waiter"].status is TaskStatus.CANCELLED
    assert result.tasks["waiter"].started_at is not None
    assert_sane(result, path)


def test_times_of_a_task_cancelled_by_ctrl_c_are_sane(tmp_path):
    flow = Flow("times-interrupted")

    @flow.task
    def quick():
        return 1

    @flow.task
    async def interrupted(quick):
        raise KeyboardInterrupt

    path = tmp_path / "runs.db"
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=str(path), max_concurrency=2)
    assert info.value.flowdsl_result.tasks["interrupted"].status is TaskStatus.CANCELLED
    assert_sane(info.value.flowdsl_result, path)
