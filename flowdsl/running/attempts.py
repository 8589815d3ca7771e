"""Calling a handler: one attempt, or several through tenacity, with per-attempt timeouts.

A task with no retries and no timeout never comes here: the runtime calls its handler
directly. A sync handler with a timeout runs in a daemon thread of its own, abandoned at the
timeout (Python cannot kill a thread); its late result and late writes are discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Mapping
from typing import Any

import tenacity

from .context import CurrentTask, _current
from ..errors import MissingOutputError, TaskTimeoutError
from ..status import TaskStatus

__all__ = ["check_produces", "call_sync", "call_async"]


def check_produces(step: Any, result: Any) -> None:
    """Fail the attempt unless ``result`` is a mapping holding every produced key."""
    if not isinstance(result, Mapping):
        raise MissingOutputError(step.id, step.produces[0], result)
    for key in step.produces:
        if key not in result:
            raise MissingOutputError(step.id, key, result)


def _start_thread(step: Any, current: CurrentTask, args: tuple, kwargs: dict,
                  ) -> tuple[concurrent.futures.Future, CurrentTask]:
    """Run one attempt in a daemon thread, with its own `CurrentTask` (so it can be abandoned)."""
    attempt = CurrentTask(step.id, current.run_id, current.record, current.attempt)
    context = contextvars.copy_context()
    context.run(_current.set, attempt)
    future: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            result = context.run(step.handler, *args, **kwargs)
        except BaseException as exc:  # handed to the waiting side, raised there
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name=f"flowdsl:{step.id}#{attempt.attempt}", daemon=True).start()
    return future, attempt


def _call_in_thread(step: Any, current: CurrentTask, args: tuple, kwargs: dict) -> Any:
    future, attempt = _start_thread(step, current, args, kwargs)
    try:
        done, _ = concurrent.futures.wait([future], timeout=step.timeout)
    except BaseException:
        attempt.live = False
        raise
    if not done:
        attempt.live = False
        raise TaskTimeoutError(step.id, step.timeout)
    return future.result()


async def _await_with_timeout(step: Any, current: CurrentTask, args: tuple, kwargs: dict) -> Any:
    attempt = CurrentTask(step.id, current.run_id, current.record, current.attempt)
    token = _current.set(attempt)
    try:
        running = asyncio.ensure_future(step.handler(*args, **kwargs))  # copies the context
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
        raise TaskTimeoutError(step.id, step.timeout)
    return running.result()


async def _in_thread(run: Any, step: Any, current: CurrentTask, args: tuple, kwargs: dict) -> Any:
    """A sync attempt under the concurrent executor: in its thread pool, or, with a timeout,
    in a thread of its own (so abandoning it never shrinks the pool)."""
    loop = asyncio.get_running_loop()
    if step.timeout is None:
        context = contextvars.copy_context()
        call = functools.partial(context.run, step.handler, *args, **kwargs)
        return await loop.run_in_executor(run.thread_pool, call)
    future, attempt = _start_thread(step, current, args, kwargs)
    try:
        done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=step.timeout)
    except BaseException:
        attempt.live = False
        raise
    if not done:
        attempt.live = False
        slots = run.slots
        if slots is not None and step.pool is not None:  # the pool's resource is still in use
            slots.hold_pool(step.pool)
            future.add_done_callback(
                lambda _: loop.call_soon_threadsafe(slots.release_pool, step.pool))
        raise TaskTimeoutError(step.id, step.timeout)
    return future.result()


def _retry_sleep(run: Any, step: Any) -> Any:
    """Sleep between retries; under the concurrent executor the attempt's slot is given back
    for the wait and taken again after it."""

    async def sleep(seconds: float) -> None:
        slots = run.slots
        if slots is None:
            await run.async_sleep(seconds)
            return
        slots.give(step.pool)
        try:
            await run.async_sleep(seconds)
        finally:
            await slots.retake(step.pool)

    return sleep


def _retrying_kwargs(run: Any, step: Any, task: Any) -> dict[str, Any]:
    return {
        "stop": tenacity.stop_after_attempt(step.retries + 1),
        "wait": step.retry_wait,
        "retry": step.retry_on,
        "before_sleep": lambda state: run.retrying(step, task, state),
        "reraise": True,
    }


def call_sync(run: Any, step: Any, task: Any, current: CurrentTask, args: tuple, kwargs: dict) -> Any:
    """Run a sync (or, inside the async driver, a sync-called) handler under its policy."""

    def attempt() -> Any:
        task.attempts += 1
        current.attempt = task.attempts
        task.status = TaskStatus.RUNNING
        run.attempt_started(task)
        if step.timeout is None:
            result = step.handler(*args, **kwargs)
        else:
            result = _call_in_thread(step, current, args, kwargs)
        if step.produces:
            check_produces(step, result)
        return result

    if not step.retries:
        return attempt()
    return tenacity.Retrying(sleep=run.sleep, **_retrying_kwargs(run, step, task))(attempt)


async def call_async(run: Any, step: Any, task: Any, current: CurrentTask, args: tuple,
                     kwargs: dict) -> Any:
    """Run an async handler (or, under the concurrent executor, a sync one in a thread)
    under its policy."""

    async def attempt() -> Any:
        task.attempts += 1
        current.attempt = task.attempts
        task.status = TaskStatus.RUNNING
        run.attempt_started(task)
        if run.remote is not None:  # another machine runs it (the Dask executor)
            result = await run.remote.attempt(run, step, current, args, kwargs)
        elif not step.is_async:
            result = await _in_thread(run, step, current, args, kwargs)
        elif step.timeout is None:
            result = await step.handler(*args, **kwargs)
        else:
            result = await _await_with_timeout(step, current, args, kwargs)
        if step.produces:
            check_produces(step, result)
        return result

    if not step.retries:
        return await attempt()
    retrying = tenacity.AsyncRetrying(sleep=_retry_sleep(run, step),
                                      **_retrying_kwargs(run, step, task))
    return await retrying(attempt)
