"""Calling a handler once: the mechanics of one attempt, and the means an executor lends.

The runtime decides *what* happens to a unit (its policy: retries, timeouts, produced keys);
an executor decides *when and where* an attempt runs and hands the runtime its `Means`: the
``submit`` coroutine that runs one async-driven attempt (on the loop, in a thread pool, on a
Dask worker), the sync ``sleep`` and the async ``wait`` between retries (the concurrent
executor gives the attempt's slot back for the wait).

A sync handler with a timeout runs in a daemon thread of its own, abandoned at the timeout
(Python cannot kill a thread); its late result and late writes are discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from ..compiling.plan import Step
from ..errors import MissingOutputError, TaskTimeoutError
from .context import CurrentTask, _current

__all__ = [
    "Args", "Kwargs", "Submit", "Wait", "Means", "check_produces", "start_thread", "call_in_thread",
    "await_with_timeout", "submit_on_loop", "wait_on_loop", "local_means",
]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: ``await submit(step, attempt, args, kwargs)``: run one attempt, return the handler's result.
Submit = Callable[[Step, CurrentTask, Args, Kwargs], Awaitable[Any]]
#: ``await wait(pool, seconds)``: the wait between two attempts of a task of ``pool``.
Wait = Callable[[str | None, float], Awaitable[None]]


@attrs.frozen
class Means:
    """What an executor lends the runtime to run attempts its way."""

    submit: Submit
    sleep: Callable[[float], None] = time.sleep
    wait: Wait | None = None  # None: ``asyncio.sleep``


def check_produces(step: Step, result: Any) -> None:
    """Fail the attempt unless ``result`` is a mapping holding every produced key."""
    # a dict (the usual result) skips the ABC check, a few times dearer than the test itself
    if type(result) is not dict and not isinstance(result, Mapping):
        raise MissingOutputError(step.id, step.produces[0], result)
    for key in step.produces:
        if key not in result:
            raise MissingOutputError(step.id, key, result)


def _attempt_copy(current: CurrentTask) -> CurrentTask:
    return CurrentTask(current.task_id, current.run_id, current.record, current.attempt,
                       current.index)


def start_thread(step: Step, current: CurrentTask, args: Args, kwargs: Kwargs,
                 ) -> tuple[concurrent.futures.Future[Any], CurrentTask]:
    """Run one attempt in a daemon thread, with its own `CurrentTask` (so it can be abandoned)."""
    attempt = _attempt_copy(current)
    context = contextvars.copy_context()
    context.run(_current.set, attempt)
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        try:
            result = context.run(step.handler, *args, **kwargs)
        except BaseException as exc:  # handed to the waiting side, raised there
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name=f"flowdsl:{step.id}#{attempt.attempt}",
                     daemon=True).start()
    return future, attempt


def call_in_thread(step: Step, current: CurrentTask, args: Args, kwargs: Kwargs) -> Any:
    """A sync attempt with a timeout, waited for from a sync caller."""
    future, attempt = start_thread(step, current, args, kwargs)
    try:
        done, _ = concurrent.futures.wait([future], timeout=step.timeout)
    except BaseException:
        attempt.live = False
        raise
    if not done:
        attempt.live = False
        raise TaskTimeoutError(step.id, step.timeout or 0.0)
    return future.result()


class _Cancelled:
    """A `CancelledError` the handler raised itself, carried out of its asyncio task intact
    (Python 3.10 replaces it with a bare one when it leaves a task)."""

    __slots__ = ("error",)

    def __init__(self, error: asyncio.CancelledError) -> None:
        self.error = error


async def _keeping_cancel(handler: Awaitable[Any]) -> Any:
    try:
        return await handler
    except asyncio.CancelledError as exc:
        return _Cancelled(exc)


async def await_with_timeout(step: Step, current: CurrentTask, args: Args,
                             kwargs: Kwargs) -> Any:
    """An async attempt with a timeout: cancelled and abandoned when the time is up."""
    attempt = _attempt_copy(current)
    token = _current.set(attempt)
    try:
        call = step.handler(*args, **kwargs)
        if sys.version_info < (3, 11):
            call = _keeping_cancel(call)
        running = asyncio.ensure_future(call)  # copies the context
    finally:
        _current.reset(token)
    try:
        done, _ = await asyncio.wait({running}, timeout=step.timeout)
    except BaseException:
        attempt.live = False
        running.cancel()
        raise
    if not done:
        attempt.live = False
        running.cancel()
        raise TaskTimeoutError(step.id, step.timeout or 0.0)
    result = running.result()
    if type(result) is _Cancelled:
        raise result.error
    return result


async def submit_on_loop(step: Step, current: CurrentTask, args: Args, kwargs: Kwargs) -> Any:
    """The local way to run an attempt on the event loop: an async handler is awaited, a sync
    one called inline (the sequential executor)."""
    if not step.is_async:
        if step.timeout is None:
            return step.handler(*args, **kwargs)
        return call_in_thread(step, current, args, kwargs)
    if step.timeout is None:
        return await step.handler(*args, **kwargs)
    return await await_with_timeout(step, current, args, kwargs)


def wait_on_loop(sleep: Callable[[float], Awaitable[object]]) -> Wait:
    """A retry wait that just sleeps (no slot to give back)."""

    async def wait(pool: str | None, seconds: float) -> None:
        await sleep(seconds)

    return wait


def local_means(sleep: Callable[[float], None] | None,
                async_sleep: Callable[[float], Awaitable[object]] | None) -> Means:
    """Attempts on this loop or inline, with the given (or the real) sleeps."""
    return Means(submit=submit_on_loop, sleep=sleep or time.sleep,
                 wait=wait_on_loop(async_sleep or asyncio.sleep))
