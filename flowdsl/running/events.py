"""Typed runtime events, and the observer protocol that receives them.

Observers are passive: they get frozen events and cannot change the run. With no observer
subscribed, the runtime builds no event at all.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Protocol, Union, runtime_checkable

import attrs

from ..errors import error_text
from ..status import RunStatus, TaskStatus
from .result import Attempt

__all__ = [
    "Event", "RunStarted", "TaskStarted", "TaskRetrying", "TaskFinished", "RunFinished",
    "TaskMapped", "ElementFinished",
    "Observer", "Emit", "emitter", "as_callback",
]


@attrs.frozen(kw_only=True)
class RunStarted:
    run_id: str
    flow: str
    total_tasks: int
    restored: int = 0  # tasks brought back completed from the run store (resume)
    to_run: tuple[str, ...] = ()  # the ids of the tasks still to settle (not restored)


@attrs.frozen(kw_only=True)
class TaskStarted:
    run_id: str
    task_id: str


@attrs.frozen(kw_only=True)
class TaskRetrying:
    run_id: str
    task_id: str
    attempt: int  # the attempt that failed
    error: BaseException
    wait: float  # seconds until the next attempt
    index: int | None = None  # the element of a mapped task; None for a whole task


@attrs.frozen(kw_only=True)
class TaskFinished:
    run_id: str
    task_id: str
    status: TaskStatus
    attempts: int
    duration: float
    error: BaseException | None = None
    reason: str | None = None
    attempt_times: tuple[Attempt, ...] = ()  # each attempt's start, end and error
    result: Any = None  # the handler's return value (COMPLETED)


@attrs.frozen(kw_only=True)
class TaskMapped:
    """A mapped task started: ``elements`` elements, ``restored`` of them brought back
    completed from the run store (they will not run)."""

    run_id: str
    task_id: str
    elements: int
    restored: int = 0


@attrs.frozen(kw_only=True)
class ElementFinished:
    """One element of a mapped task ended (its task's `TaskFinished` follows the last one)."""

    run_id: str
    task_id: str
    index: int
    status: TaskStatus
    attempts: int
    duration: float
    error: BaseException | None = None
    attempt_times: tuple[Attempt, ...] = ()


@attrs.frozen(kw_only=True)
class RunFinished:
    run_id: str
    flow: str
    status: RunStatus
    summary: dict[str, Any]


Event = Union[RunStarted, TaskStarted, TaskRetrying, TaskFinished, RunFinished, TaskMapped,
              ElementFinished]


@runtime_checkable
class Observer(Protocol):
    """Anything with ``on_event(event)``; a plain callable taking the event works too."""

    def on_event(self, event: Event) -> None: ...


Emit = Callable[[Event], None]


def emitter(observers: Iterable[Observer | Emit]) -> Emit | None:
    """One callable handing each event to every observer (None without observers, so the
    runtime builds no event at all); an observer that raises gives a `RuntimeWarning`."""
    callbacks = [as_callback(o) for o in observers]
    if not callbacks:
        return None

    def emit(event: Event) -> None:
        for callback in callbacks:
            try:
                callback(event)
            except Exception as exc:  # an observer cannot change the run
                warnings.warn(f"flowdsl observer {callback!r} raised {error_text(exc)}",
                              RuntimeWarning, stacklevel=2)

    return emit


def as_callback(observer: Observer | Callable[[Event], None]) -> Callable[[Event], None]:
    """The callable to hand events to."""
    if isinstance(observer, Observer):
        return observer.on_event
    if callable(observer):
        return observer
    raise TypeError(f"an observer needs on_event(event) or to be callable, got {observer!r}")
