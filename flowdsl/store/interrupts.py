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
from _thread import get_ident

# The C functions behind `signal.signal` / `signal.getsignal`: the public wrappers convert
# the previous handler to an enum member, which for a Python handler raises and catches a
# ValueError inside `enum` on every call (about 20x the cost of the swap itself, paid twice
# per store transaction, i.e. twice per task).
import _signal  # type: ignore[import-not-found,unused-ignore]
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

__all__ = ["deferred_sigint", "hold_sigint", "release_sigint", "deliver", "Held"]


class Held:
    """A SIGINT held back while one transaction runs (see `hold_sigint`)."""

    __slots__ = ("previous", "arrived", "frame")
    previous: Any  # the handler to put back
    arrived: bool
    frame: FrameType | None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.arrived, self.frame = True, frame


def hold_sigint(main_thread: int | None = None, held: Held | None = None) -> Held | None:
    """Start holding SIGINT (in the main thread, whose ident the caller may know already;
    None where nothing is held): give the result to `release_sigint` once the transaction
    has committed or rolled back. ``held``: a `Held` to reuse (the caller's writes never
    overlap)."""
    if get_ident() != (threading.main_thread().ident if main_thread is None else main_thread):
        return None
    previous: Any = _signal.getsignal(signal.SIGINT)
    if previous is None:  # a handler set outside Python: it could not be put back
        return None
    if held is None:
        held = Held()  # (attributes set here: no __init__ frame)
    held.previous, held.arrived = previous, False
    try:
        _signal.signal(signal.SIGINT, held)
    except ValueError:  # not the main interpreter
        return None
    return held


def release_sigint(held: Held | None) -> None:
    """Put the handler back and deliver a SIGINT that arrived meanwhile through it
    (``KeyboardInterrupt`` by default)."""
    if held is None:
        return
    _signal.signal(signal.SIGINT, held.previous)
    if held.arrived:
        deliver(held)


def deliver(held: Held) -> None:
    """Deliver the SIGINT ``held`` received, through the handler it held it from (its
    handler is back in place)."""
    frame, held.frame = held.frame, None  # (a reused Held keeps no frame alive)
    _deliver(held.previous, frame)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """While the block runs, a SIGINT is recorded, not raised; it is delivered at the end
    through the handler that was in place (``KeyboardInterrupt`` by default)."""
    held = hold_sigint()
    try:
        yield
    finally:
        release_sigint(held)


def _deliver(handler: Any, frame: FrameType | None) -> None:
    if handler == signal.SIG_IGN:  # an int from `_signal` (an enum member from `signal`)
        return
    if callable(handler):
        handler(signal.SIGINT, frame)  # the default one raises KeyboardInterrupt
        return
    raise KeyboardInterrupt  # SIG_DFL or a handler set outside Python
