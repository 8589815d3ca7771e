"""Starting ready units as slots free up, on one event loop: what the concurrent and the
Dask executors share (they differ in where an attempt runs, i.e. in their `Means`).

Among ready units the lowest priority value starts first; among equal priorities, with
adaptive scheduling, the longest expected critical path; then plan order. Resource pools cap
their tasks whatever N is; a unit waiting for a full pool never blocks ready units of other
pools. A critical failure stops new starts and cancels the attempts in flight that can be
cancelled (async ones; sync ones too when ``cancels_sync``, as on Dask).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Mapping

from ..compiling.plan import Plan
from ..running.attempts import Means
from ..running.runtime import Run
from ..running.result import TaskRun
from ..status import TaskStatus
from .schedule import critical_paths, expected_durations
from .slots import Slots

__all__ = ["Scheduler", "ranks"]

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
Rank = tuple[int, float, int]
#: a ready unit: its task's rank, its element index (-1 for a whole task), the unit
Ready = tuple[Rank, int, TaskRun]


def ranks(plan: Plan, history: Mapping[str, list[float]] | None) -> dict[str, Rank]:
    """Start order among ready units: priority, then (with ``history``: adaptive scheduling)
    the longest expected critical path first, then plan order."""
    if history is None:
        return {step.id: (step.priority, 0.0, step.position) for step in plan.steps}
    paths = critical_paths(plan, expected_durations(plan, history))
    return {step.id: (step.priority, -paths[step.id], step.position) for step in plan.steps}


class Scheduler:
    """Runs the units of one run, up to ``slots.free`` at once, each through ``means``."""

    def __init__(self, run: Run, slots: Slots, means: Means, rank: Mapping[str, Rank], *,
                 cancels_sync: bool) -> None:
        self.run = run
        self.slots = slots
        self.means = means
        self.rank = rank
        self.cancels_sync = cancels_sync
        self.units = run.tasks
        self.waiting = {step.id: len(step.dependencies) for step in run.plan.steps}
        self.ready: list[Ready] = []
        self.running: dict[asyncio.Future[None], TaskRun] = {}
        self.cancelling: set[asyncio.Future[None]] = set()
        self.abandoning = False
        #: a `CancelledError` a handler raised itself (not one of the scheduler's cancels): it
        #: stops the run like any interrupt, as at N = 1
        self.raised: asyncio.CancelledError | None = None

    def _push(self, task_id: str) -> None:
        heapq.heappush(self.ready, (self.rank[task_id], -1, self.units[task_id]))

    def settled(self, task_id: str) -> None:
        """A task reached its final status: release its dependants. One whose dependencies
        have all ended passes the run's gate (trigger rule, ``run_if``) while the run goes
        on: admitted, it waits for a slot; otherwise it is settled and releases its own."""
        run, plan, waiting = self.run, self.run.plan, self.waiting
        stack = [task_id]
        while stack:
            for child in plan.children[stack.pop()]:
                waiting[child] -= 1
                unit = self.units[child]
                if waiting[child] or unit.status is not PENDING:
                    continue
                if run.stopped_by is None and run.gated and not run.admit(unit):
                    stack.append(child)
                else:
                    self._push(child)

    def _seed(self) -> None:
        """Release what restored tasks unblock, then start from the roots. Which units were
        restored is read first: releasing may settle more units (a gate that skips them),
        and those release their own dependants once, from `settled`."""
        run = self.run
        restored, roots = [], []
        for unit in run.units:
            if unit.status is not PENDING:  # restored from the run store
                restored.append(unit)
            elif not unit.step.dependencies:
                roots.append(unit)
        for unit in restored:
            self.settled(unit.task_id)
        for unit in roots:
            if unit.step.run_if is None or run.admit(unit):
                self._push(unit.task_id)
            else:
                self.settled(unit.task_id)

    async def run_all(self) -> None:
        """Start ready units as slots free up, until every task has settled."""
        self._seed()
        try:
            await self._loop()
            if self.run.stopped_by is not None:
                for unit in self.run.units:
                    if unit.status is PENDING:
                        self.run.stop_pending(unit)
                    elif unit.status is RUNNING and unit.elements is not None:
                        self.run.stop_elements(unit)  # its elements not started
        except BaseException:
            await self._abandon()
            raise

    async def _loop(self) -> None:
        run, slots, running = self.run, self.slots, self.running
        while self.ready or running:
            if run.stopped_by is None:
                self._start()
            else:
                self._cancel_in_flight()
                if not running:
                    break
            if not running:
                if self.ready:  # only held pool slots block the ready units
                    await slots.changed()
                continue  # (or a map settled at once, and nothing is left)
            done, _ = await asyncio.wait([*running, slots.changed()],
                                         return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                unit = running.pop(job, None)
                if unit is None:
                    continue
                if job.cancelled():
                    reason = f"critical task {run.stopped_by!r} failed"
                    if unit.index is None:
                        run.cancel_in_flight(unit, reason)
                    else:
                        run.element_cancelled(unit, reason)
                else:
                    job.result()  # re-raise a store failure
                    if self.raised is not None:  # the handler's own CancelledError
                        raise self.raised
                if unit.index is None or self.units[unit.task_id].status is not RUNNING:
                    self.settled(unit.task_id)  # (a mapped task: once its last element settled)

    def _start(self) -> None:
        """Start ready units while slots are free; skip over those whose pool is full."""
        slots, ready = self.slots, self.ready
        deferred = []
        while ready and slots.free > 0:
            item = heapq.heappop(ready)
            unit = item[2]
            if unit.step.map_over and unit.index is None:  # its elements become ready units
                self._map(item[0], unit)
                continue
            pool = unit.step.pool
            if pool is not None and slots.pool_free[pool] <= 0:
                deferred.append(item)
                continue
            slots.take(pool)
            self.running[asyncio.ensure_future(self._run_one(unit))] = unit
        for item in deferred:
            heapq.heappush(ready, item)

    def _map(self, rank: Rank, unit: TaskRun) -> None:
        """Start mapped task ``unit``: each of its elements is ready (one slot each)."""
        for element in self.run.start_map(unit):
            heapq.heappush(self.ready, (rank, element.index or 0, element))
        if unit.status is not RUNNING:  # settled at once (no element to run)
            self.settled(unit.task_id)

    async def _run_one(self, unit: TaskRun) -> None:
        try:
            if unit.index is None:
                await self.run.arun_unit(unit, self.means)
            else:
                await self.run.arun_element(unit, self.means)
        except asyncio.CancelledError as exc:
            if self.abandoning or asyncio.current_task() in self.cancelling:
                raise  # the scheduler's own cancel
            if self.raised is None:  # raised by the handler: kept as raised (3.10 loses
                self.raised = exc    # the message of one that leaves a task)
        finally:
            self.slots.give(unit.step.pool)

    def _cancel_in_flight(self) -> None:
        """After a critical failure: cancel the attempts in flight that can be cancelled."""
        for job, unit in self.running.items():
            if (unit.step.is_async or self.cancels_sync) and job not in self.cancelling:
                self.run.close_in_flight(unit.task_id)
                job.cancel()
                self.cancelling.add(job)

    async def _abandon(self) -> None:
        """The run stops (interrupt, store failure): what is in flight is cancelled and what
        it writes while unwinding is discarded."""
        self.abandoning = True
        self.run.close_in_flight()
        for job in self.running:
            job.cancel()
        if self.running:
            await asyncio.wait(list(self.running), timeout=1.0)
