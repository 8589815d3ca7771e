"""Ctrl-C made cooperative around a store transaction.

`deferred_sigint` holds a SIGINT that arrives while a transaction runs and delivers it
(normally as `KeyboardInterrupt`) once the transaction has committed or rolled back, so a
write is never cut in half and the caller knows which way it went. Signal handlers can be
set only in the main thread; elsewhere it does nothing (the store then decides from the
connection's state whether COMMIT happened).
"""

from __future__ import annotations

import signal
import threading

# The C functions behind `signal.signal` / `signal.getsignal`: the public wrappers convert
# the previous handler to an enum member, which for a Python handler raises and catches a
# ValueError inside `enum` on every call (about 20x the cost of the swap itself, paid twice
# per store transaction, i.e. twice per task).
import _signal  # type: ignore[import-not-found,unused-ignore]
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

__all__ = ["deferred_sigint"]


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """While the block runs, a SIGINT is recorded, not raised; it is delivered at the end
    through the handler that was in place (``KeyboardInterrupt`` by default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[FrameType | None] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(frame)

    previous: Any = _signal.getsignal(signal.SIGINT)
    if previous is None:  # a handler set outside Python: it could not be put back
        yield
        return
    try:
        _signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        _signal.signal(signal.SIGINT, previous)
        if received:
            _deliver(previous, received[0])


def _deliver(handler: Any, frame: FrameType | None) -> None:
    if handler == signal.SIG_IGN:  # an int from `_signal` (an enum member from `signal`)
        return
    if callable(handler):
        handler(signal.SIGINT, frame)  # the default one raises KeyboardInterrupt
        return
    raise KeyboardInterrupt  # SIG_DFL or a handler set outside Python
