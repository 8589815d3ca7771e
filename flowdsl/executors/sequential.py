"""The sequential executor: one unit at a time, in plan order, in the caller's thread."""

from __future__ import annotations

from ..running.attempts import Means, local_means
from ..running.result import TaskRun
from ..running.runtime import Run
from ..status import TaskStatus
from .base import AsyncSleep, Executor, Sleep

__all__ = ["SequentialExecutor"]

PENDING = TaskStatus.PENDING


class SequentialExecutor(Executor):
    """Run tasks one by one in plan order (``max_concurrency=1``).

    A flow of sync handlers runs inline, with no event loop; ``sleep``/``async_sleep``
    replace the waits between retries (tests inject fakes so they never sleep).
    """

    def __init__(self, *, sleep: Sleep | None = None,
                 async_sleep: AsyncSleep | None = None) -> None:
        self.means = local_means(sleep, async_sleep)

    def execute(self, run: Run) -> None:
        run.in_order = True  # one task at a time: no two spans overlap (see `summarize`)
        token = run.enter_inline()
        try:
            self._execute(run)
        finally:
            run.leave_inline(token)

    def _execute(self, run: Run) -> None:
        sleep = self.means.sleep
        if not run.plan.mapped:  # the plain loop: no per-task map_over check (issue 16)
            for unit in run.units:
                # `settled_before_start`'s common answer (pending, not stopped, not gated:
                # runs) tested inline: saves a method call per task (issue 16)
                if unit.status is PENDING and run.stopped_by is None and not run.gated \
                        or not run.settled_before_start(unit):
                    run.run_unit(unit, sleep)
            return
        for unit in run.units:
            if not run.settled_before_start(unit):
                if unit.step.map_over:
                    for element in run.start_map(unit):
                        if run.stopped_by is not None:
                            break
                        run.run_element(element, sleep)
                    _stop_map(run, unit)
                else:
                    run.run_unit(unit, sleep)

    async def aexecute(self, run: Run) -> None:
        run.in_order = True
        token = run.enter_inline()
        try:
            await self._aexecute(run)
        finally:
            run.leave_inline(token)

    async def _aexecute(self, run: Run) -> None:
        means = self.means
        for unit in run.units:
            if run.settled_before_start(unit):
                continue
            if unit.step.map_over:
                await _map(run, unit, means)
            elif unit.step.is_async:
                await run.arun_unit(unit, means)
            else:
                run.run_unit(unit, means.sleep)

    def __repr__(self) -> str:
        return "SequentialExecutor()"


async def _map(run: Run, unit: TaskRun, means: Means) -> None:
    """The elements of a mapped task, one by one in element order."""
    for element in run.start_map(unit):
        if run.stopped_by is not None:
            break
        if unit.step.is_async:
            await run.arun_element(element, means)
        else:
            run.run_element(element, means.sleep)
    _stop_map(run, unit)


def _stop_map(run: Run, unit: TaskRun) -> None:
    """After a critical failure: the elements not started are cancelled."""
    if unit.status is TaskStatus.RUNNING:
        run.stop_elements(unit)
