"""The concurrent executor: up to ``max_concurrency`` tasks at once on one event loop.

Async handlers run on the loop, sync handlers in a pool of N daemon threads (a sync attempt
with a timeout in a thread of its own, so abandoning it never shrinks the pool). After Ctrl-C
the sync attempts in flight are recorded CANCELLED and abandoned: they never delay the exit.
The order in which ready tasks start is the `Scheduler`'s.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

from ..compiling.plan import Plan, Step
from ..errors import TaskTimeoutError
from ..running.attempts import Args, Kwargs, Means, Wait, await_with_timeout, start_thread
from ..running.context import CurrentTask
from ..running.runtime import Run
from .base import AsyncSleep, Executor, Sleep
from .scheduler import Scheduler, ranks
from .slots import Slots
from .threads import DaemonThreads

__all__ = ["ConcurrentExecutor", "LocalAttempts", "slot_wait", "check_limit"]


def check_limit(max_concurrency: int) -> int:
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
            or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
    return max_concurrency


class LocalAttempts:
    """Runs attempts in this process: async handlers on the loop, sync ones in ``pool``
    (or, with a timeout, in a thread of their own, holding their pool slot until it ends)."""

    def __init__(self, pool: DaemonThreads, slots: Slots) -> None:
        self.pool = pool
        self.slots = slots

    async def __call__(self, step: Step, current: CurrentTask, args: Args,
                       kwargs: Kwargs) -> Any:
        if step.is_async:
            if step.timeout is None:
                return await step.handler(*args, **kwargs)
            return await await_with_timeout(step, current, args, kwargs)
        loop = asyncio.get_running_loop()
        if step.timeout is None:
            context = contextvars.copy_context()
            call = functools.partial(context.run, step.handler, *args, **kwargs)
            return await loop.run_in_executor(self.pool, call)
        future, attempt = start_thread(step, current, args, kwargs)
        try:
            done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=step.timeout)
        except BaseException:
            attempt.live = False
            raise
        if not done:
            attempt.live = False
            pool = step.pool
            if pool is not None:  # the pool's resource is still in use
                slots = self.slots
                slots.hold_pool(pool)
                future.add_done_callback(
                    lambda _: loop.call_soon_threadsafe(slots.release_pool, pool))
            raise TaskTimeoutError(step.id, step.timeout or 0.0)
        return future.result()


def slot_wait(slots: Slots, async_sleep: AsyncSleep | None) -> Wait:
    """The wait between retries: the attempt's slot is given back for it, taken again after."""
    sleep = async_sleep or asyncio.sleep

    async def wait(pool: str | None, seconds: float) -> None:
        slots.give(pool)
        try:
            await sleep(seconds)
        finally:
            await slots.retake(pool)

    return wait


class ConcurrentExecutor(Executor):
    """Run ready tasks concurrently: ``ConcurrentExecutor(max_concurrency=4)``."""

    def __init__(self, max_concurrency: int = 4, *, adaptive: bool = True,
                 sleep: Sleep | None = None, async_sleep: AsyncSleep | None = None) -> None:
        self.max_concurrency = check_limit(max_concurrency)
        self.adaptive = adaptive
        self.sleep = sleep
        self.async_sleep = async_sleep

    def uses_event_loop(self, plan: Plan) -> bool:
        return True  # sync handlers run in threads, coordinated on one loop

    def execute(self, run: Run) -> None:  # pragma: no cover - the façade always uses aexecute
        asyncio.run(self.aexecute(run))

    async def aexecute(self, run: Run) -> None:
        limit = self.max_concurrency
        slots = Slots(limit, run.plan.pools)
        pool = DaemonThreads(limit)  # never holds the process (Ctrl-C with a hung handler)
        try:
            means = Means(submit=LocalAttempts(pool, slots),
                          wait=slot_wait(slots, self.async_sleep))
            history = run.history() if self.adaptive and limit > 1 else None
            await Scheduler(run, slots, means, ranks(run.plan, history),
                            cancels_sync=False).run_all()
        finally:  # an abandoned (timed-out) thread never delays the end of the run
            pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ConcurrentExecutor(max_concurrency={self.max_concurrency}, adaptive={self.adaptive})"
