"""Driving a run's event loop from sync code: a new loop per run (``flow.run`` of a flow that
needs one), or a helper thread when the caller's thread already runs a loop (a notebook).

The loop behaves as ``asyncio.run``'s does on Python 3.11, on every version: Ctrl-C cancels the
run's task (which unwinds the run, discarding what cancelled attempts write, and records its
tasks "interrupted by KeyboardInterrupt") and then raises `KeyboardInterrupt`, instead of
raising it wherever the loop happens to be (3.10); and a `CancelledError` raised by a handler
reaches the caller as raised (3.10 replaces it with a bare one, its message lost, when it
leaves the run's task).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

from ..running.runtime import CTRL_C

__all__ = ["run_on_new_loop", "loop_running", "in_helper_thread"]

T = TypeVar("T")


def run_on_new_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new event loop and return its result."""
    return _run_as_311(main)


def _run_as_311(main: Coroutine[Any, Any, T]) -> T:
    raised: list[BaseException] = []

    async def guarded() -> T | None:
        try:
            return await main
        except asyncio.CancelledError as exc:  # kept as raised
            raised.append(exc)
            return None

    loop = asyncio.new_event_loop()
    interrupted = False
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(guarded())

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupted
            if interrupted or task.done():  # a second Ctrl-C: stop now
                raise KeyboardInterrupt()
            interrupted = True
            task.cancel(CTRL_C)  # the run records its tasks "interrupted by KeyboardInterrupt"
            loop.call_soon_threadsafe(lambda: None)  # wake the loop up

        handler = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            handler = on_sigint
            signal.signal(signal.SIGINT, handler)
        try:
            result = loop.run_until_complete(task)
        finally:
            if handler is not None and signal.getsignal(signal.SIGINT) is handler:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        if interrupted:
            raise KeyboardInterrupt()
        if raised:
            raise raised[0]
        return result  # type: ignore[return-value]  # None only with an error raised above
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def loop_running() -> bool:
    """Whether this thread runs an event loop now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def in_helper_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a helper thread (a private event loop) and hand back its outcome."""
    outcome: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            error.append(exc)

    helper = threading.Thread(target=target, name="flowdsl-run-loop", daemon=True)
    helper.start()
    helper.join()
    if error:
        raise error[0]
    return outcome[0]
