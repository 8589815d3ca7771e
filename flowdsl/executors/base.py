"""The executor interface: which task of a run starts when. The `Run` does the rest."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the interface sits below the runtime that drives it
    from ..running.runtime import Run

__all__ = ["Executor"]


class Executor(abc.ABC):
    """Runs the tasks of a `Run`: the sequential executor one by one in plan order;
    concurrent and distributed executors plug in here without touching the compiler."""

    #: ``sleep(seconds)`` used between retries (inject a fake one in tests).
    sleep: Any = None
    #: ``await async_sleep(seconds)`` used between retries of async tasks.
    async_sleep: Any = None

    @abc.abstractmethod
    def execute(self, run: "Run") -> None:
        """Run a flow of sync handlers in the caller's thread."""

    @abc.abstractmethod
    async def aexecute(self, run: "Run") -> None:
        """Run a flow (with async handlers) on the running event loop."""

    def uses_event_loop(self, plan: Any) -> bool:
        """Whether this executor drives ``plan`` on an event loop (else: inline, sync)."""
        return bool(plan.is_async)

    def configure(self, run: "Run") -> None:
        """Hand the executor's sleep functions to the run (used between retries)."""
        if self.sleep is not None:
            run.sleep = self.sleep
        if self.async_sleep is not None:
            run.async_sleep = self.async_sleep
