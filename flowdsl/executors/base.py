"""The executor interface, and the drivers that turn an interrupted run into a result."""

from __future__ import annotations

import abc
from typing import Any

from ..result import RunResult
from ..runtime import Run

__all__ = ["Executor", "drive", "adrive"]


class Executor(abc.ABC):
    """Runs the tasks of a `Run`: the sequential executor one by one in plan order;
    concurrent and distributed executors plug in here without touching the compiler."""

    #: ``sleep(seconds)`` used between retries (inject a fake one in tests).
    sleep: Any = None
    #: ``await async_sleep(seconds)`` used between retries of async tasks.
    async_sleep: Any = None

    @abc.abstractmethod
    def execute(self, run: Run) -> None:
        """Run a flow of sync handlers in the caller's thread."""

    @abc.abstractmethod
    async def aexecute(self, run: Run) -> None:
        """Run a flow (with async handlers) on the running event loop."""

    def _configure(self, run: Run) -> None:
        if self.sleep is not None:
            run.sleep = self.sleep
        if self.async_sleep is not None:
            run.async_sleep = self.async_sleep


def _interrupted(run: Run, exc: BaseException) -> None:
    run.interrupt(exc)
    try:
        exc.flowdsl_result = run.finish()  # type: ignore[attr-defined]
    except Exception:  # the original exception matters more than a failed summary
        pass


def drive(executor: Executor, run: Run) -> RunResult:
    """Execute ``run`` synchronously; on an interrupt, cancel what is left, attach the
    `RunResult` to the exception as ``flowdsl_result`` and re-raise it."""
    executor._configure(run)
    try:
        executor.execute(run)
    except BaseException as exc:
        _interrupted(run, exc)
        raise
    return run.finish()


async def adrive(executor: Executor, run: Run) -> RunResult:
    """The async twin of `drive`."""
    executor._configure(run)
    try:
        await executor.aexecute(run)
    except BaseException as exc:
        _interrupted(run, exc)
        raise
    return run.finish()
