"""The concurrent executor: up to ``max_concurrency`` tasks at once on one event loop.

Async handlers run on the loop, sync handlers in a pool of N threads (a sync attempt with a
timeout in a thread of its own). Among ready tasks the lowest priority value starts first;
among equal priorities, with adaptive scheduling, the longest expected critical path; then
plan order. Resource pools cap their tasks whatever N is; a task waiting for a full pool
never blocks ready tasks of other pools.
"""

from __future__ import annotations

import asyncio
import heapq
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..running.runtime import Run
from .schedule import critical_paths, expected_durations
from .slots import Slots
from ..status import TaskStatus
from .base import Executor

__all__ = ["ConcurrentExecutor"]

PENDING = TaskStatus.PENDING


class ConcurrentExecutor(Executor):
    """Run ready tasks concurrently: ``ConcurrentExecutor(max_concurrency=4)``."""

    #: Whether a critical failure cancels sync attempts in flight (a local thread cannot be
    #: interrupted, so the run waits for them and records their outcome).
    cancels_sync = False

    def __init__(self, max_concurrency: int = 4, *, adaptive: bool = True, sleep: Any = None,
                 async_sleep: Any = None) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
                or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self.adaptive = adaptive
        self.sleep = sleep
        self.async_sleep = async_sleep

    def uses_event_loop(self, plan: Any) -> bool:
        return True  # sync handlers run in threads, coordinated on one loop

    def execute(self, run: Run) -> None:  # pragma: no cover - the façade always uses aexecute
        asyncio.run(self.aexecute(run))

    async def aexecute(self, run: Run) -> None:
        run.thread_pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="flowdsl")
        try:
            await self.schedule(run, self.max_concurrency)
        finally:
            run.thread_pool.shutdown(wait=False, cancel_futures=True)

    async def schedule(self, run: Run, limit: int) -> None:
        """Start ready tasks as slots free up, until every task has settled."""
        plan, tasks = run.plan, run.tasks
        slots = run.slots = Slots(limit, plan.pools)
        if self.adaptive and limit > 1:
            paths = critical_paths(plan, expected_durations(plan, run.history_source()))
        else:
            paths = {step.id: 0.0 for step in plan.steps}
        rank = {step.id: (step.priority, -paths[step.id], step.position) for step in plan.steps}
        waiting = {step.id: len(step.dependencies) for step in plan.steps}
        ready: list[tuple[tuple[int, float, int], str]] = []
        running: dict[asyncio.Task[None], Any] = {}
        cancelling: set[asyncio.Task[None]] = set()

        def settled(task_id: str) -> None:
            """A task reached its final status: release its dependants."""
            stack = [task_id]
            while stack:
                for child in plan.children[stack.pop()]:
                    waiting[child] -= 1
                    if waiting[child] or tasks[child].status is not PENDING:
                        continue
                    step = plan.index[child]
                    cause = run.blocking_cause(step) if run.blocked else None
                    if cause is not None and run.stopped_by is None:
                        run.skip(step, tasks[child], cause)
                        stack.append(child)
                    else:
                        heapq.heappush(ready, (rank[child], child))

        for step in plan.steps:
            if tasks[step.id].status is not PENDING:  # restored from the run store
                settled(step.id)
            elif not step.dependencies:
                heapq.heappush(ready, (rank[step.id], step.id))
        try:
            while ready or running:
                if run.stopped_by is None:
                    self._start(run, slots, ready, running)
                else:
                    for job, step in running.items():  # async attempts can be cancelled
                        if (step.is_async or self.cancels_sync) and job not in cancelling:
                            run.close_in_flight(step.id)
                            job.cancel()
                            cancelling.add(job)
                    if not running:
                        break
                if not running:
                    await slots.changed()  # only held pool slots block the ready tasks
                    continue
                done, _ = await asyncio.wait(
                    [*running, slots.changed()], return_when=asyncio.FIRST_COMPLETED)
                for job in done:
                    step = running.pop(job, None)  # type: ignore[arg-type]
                    if step is None:
                        continue
                    if job.cancelled():
                        run.cancel_in_flight(tasks[step.id],
                                             f"critical task {run.stopped_by!r} failed")
                    else:
                        job.result()  # re-raise a store failure
                    settled(step.id)
            if run.stopped_by is not None:
                for step in plan.steps:
                    if tasks[step.id].status is PENDING:
                        run.stop_pending(step, tasks[step.id])
        except BaseException:
            run.close_in_flight()  # what they write while unwinding is discarded
            for job in running:
                job.cancel()
            if running:
                await asyncio.wait(list(running), timeout=1.0)
            raise

    def _start(self, run: Run, slots: Slots, ready: list[Any],
               running: dict[asyncio.Task[None], Any]) -> None:
        """Start ready tasks while slots are free; skip over those whose pool is full."""
        deferred = []
        while ready and slots.free > 0:
            item = heapq.heappop(ready)
            step = run.plan.index[item[1]]
            if step.pool is not None and slots.pool_free[step.pool] <= 0:
                deferred.append(item)
                continue
            slots.take(step.pool)
            job = asyncio.ensure_future(self._run_one(run, step, slots))
            running[job] = step
        for item in deferred:
            heapq.heappush(ready, item)

    @staticmethod
    async def _run_one(run: Run, step: Any, slots: Slots) -> None:
        try:
            await run.arun_task(step, run.tasks[step.id])
        finally:
            slots.give(step.pool)

    def __repr__(self) -> str:
        return f"ConcurrentExecutor(max_concurrency={self.max_concurrency}, adaptive={self.adaptive})"
