"""Issue 11, reliability 2: an async handler that raises `asyncio.CancelledError` itself (it
awaited a future someone else cancelled) stops the run as DESIGN "Failure semantics" says for
every executor: the run is CANCELLED (never SUCCEEDED), nothing downstream runs, and the error
reaches the caller as raised (its message too, also on Python 3.10), carrying the result.
Only tasks the executor cancelled itself carry a "critical task ... failed" reason."""

from __future__ import annotations

import asyncio

import pytest

from flowdsl import Flow, Priority, RunStatus, TaskStatus
from flowdsl.store import SqliteStore


def cancelling_flow(name: str, ran: list[str], how: str) -> Flow:
    flow = Flow(name)

    @flow.task(priority=Priority.HIGH)
    def first():
        return "kept"

    if how == "raise":
        @flow.task
        async def bad(first):
            await asyncio.sleep(0)
            raise asyncio.CancelledError("someone else's future")
    elif how == "sync":
        @flow.task
        def bad(first):
            raise asyncio.CancelledError("someone else's future")
    else:
        @flow.task
        async def bad(first):
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # a future someone else cancelled

    @flow.task
    def after(bad):
        ran.append("after")
        return "never"

    @flow.task
    async def after_async(bad):
        ran.append("after_async")
        return "never"

    return flow


@pytest.mark.parametrize("how", ["raise", "await", "sync"])
def test_a_handlers_own_cancelled_error_never_makes_a_run_succeed(run_flow, tmp_path, how):
    ran: list[str] = []
    flow = cancelling_flow(f"own-cancel-{how}", ran, how)
    path = tmp_path / "runs.db"

    with pytest.raises(asyncio.CancelledError) as info:
        run_flow(flow, store=str(path), run_id="r1")

    if how != "await":
        assert info.value.args == ("someone else's future",)  # kept as raised
    result = info.value.flowdsl_result
    assert result.status is RunStatus.CANCELLED
    tasks = result.tasks
    assert tasks["first"].status is TaskStatus.COMPLETED
    for tid in ("bad", "after", "after_async"):
        assert tasks[tid].status is TaskStatus.CANCELLED, tid
        assert tasks[tid].reason == "run interrupted by CancelledError", tid
    assert ran == []  # nothing downstream ran
    assert result.results == {"first": "kept"}

    with SqliteStore(path) as store:
        stored = store.get_run("r1")
    assert stored["status"] == "cancelled"
    assert stored["tasks"]["first"]["status"] == "completed"
    assert {stored["tasks"][t]["status"] for t in ("bad", "after", "after_async")} == \
        {"cancelled"}

