"""The executor interface (which unit of a run starts when, and where its attempts run),
and the drivers that run an executor over a `Run`."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable

from ..compiling.plan import Plan
from ..running.result import RunResult
from ..running.runtime import Run

__all__ = ["Executor", "Sleep", "AsyncSleep", "drive", "adrive"]

#: ``sleep(seconds)`` between retries of sync attempts (tests inject a fake).
Sleep = Callable[[float], None]
#: ``await async_sleep(seconds)`` between retries of attempts driven from the event loop.
AsyncSleep = Callable[[float], Awaitable[object]]


class Executor(abc.ABC):
    """Decides when each unit of a `Run` starts and where its attempts run; the `Run` does
    what happens to it. Built with its means (sleeps; pools and clients where it has them)."""

    @abc.abstractmethod
    def execute(self, run: Run) -> None:
        """Run a flow of sync handlers in the caller's thread."""

    @abc.abstractmethod
    async def aexecute(self, run: Run) -> None:
        """Run a flow on the running event loop."""

    def uses_event_loop(self, plan: Plan) -> bool:
        """Whether this executor drives ``plan`` on an event loop (else: inline, sync)."""
        return plan.is_async


def drive(executor: Executor, run: Run) -> RunResult:
    """Execute ``run`` synchronously with ``executor``. On an interrupt (or a store failure)
    cancel what is left, attach the `RunResult` to the exception as ``flowdsl_result`` and
    re-raise it."""
    run.announce()
    try:
        executor.execute(run)
    except BaseException as exc:
        _stop(run, exc)
        raise
    return run.finish()


async def adrive(executor: Executor, run: Run) -> RunResult:
    """`drive` on the running event loop."""
    run.announce()
    try:
        await executor.aexecute(run)
    except BaseException as exc:
        _stop(run, exc)
        raise
    return run.finish()


def _stop(run: Run, exc: BaseException) -> None:
    """The run stops on ``exc``: cancel what is left and attach the `RunResult` to it as
    ``exc.flowdsl_result`` (the driver re-raises it)."""
    run.interrupt(exc)
    try:
        exc.flowdsl_result = run.finish()  # type: ignore[attr-defined]
    except Exception:  # the original exception matters more than a failed summary
        pass
