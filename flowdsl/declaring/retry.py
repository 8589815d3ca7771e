"""Normalise the retry keywords of a task into tenacity strategy objects, once.

Users pass tenacity's own objects straight in (``retry_wait=tenacity.wait_exponential(...)``,
``retry_on=tenacity.retry_if_exception_message(...)``); plain numbers and exception types
are turned into the equivalent tenacity objects here, at decoration time.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import tenacity
from tenacity.retry import retry_base
from tenacity.wait import wait_base

__all__ = ["DEFAULT_WAIT", "as_wait", "as_retry", "never_retried"]

#: 1 s, 2 s, 4 s ... capped at 60 s: the seed program's backoff.
DEFAULT_WAIT: wait_base = tenacity.wait_exponential(multiplier=1, max=60)

#: Interrupts that stop a run instead of being retried, whatever ``retry_on`` says.
never_retried = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)


def as_wait(value: Any, task: str) -> wait_base:
    """Seconds (int/float) or any tenacity wait strategy -> a tenacity wait strategy."""
    from ..errors import DefinitionError

    if value is None:
        return DEFAULT_WAIT
    if isinstance(value, wait_base):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise DefinitionError(f"task {task!r}: retry_wait must be >= 0, got {value!r}")
        return tenacity.wait_fixed(value) if value else tenacity.wait_none()
    raise DefinitionError(
        f"task {task!r}: retry_wait must be seconds or a tenacity wait strategy, got {value!r}"
    )


def _is_exception_type(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def as_retry(value: Any, task: str) -> retry_base:
    """Exception type(s) or a tenacity retry predicate -> a tenacity retry predicate.

    Whatever the user passes, interrupts (KeyboardInterrupt, SystemExit, CancelledError),
    `MissingOutputError` and `SerializationError` are never retried.
    """
    from ..errors import DefinitionError

    if value is None:
        return _default_retry()
    if isinstance(value, retry_base):
        user: retry_base = value
    elif _is_exception_type(value):
        user = tenacity.retry_if_exception_type(value)
    elif isinstance(value, (tuple, list)) and value and all(map(_is_exception_type, value)):
        user = tenacity.retry_if_exception_type(tuple(value))
    else:
        raise DefinitionError(
            f"task {task!r}: retry_on must be exception types or a tenacity retry predicate, "
            f"got {value!r}"
        )
    return tenacity.retry_if_not_exception_type(_not_retried()) & user


@functools.lru_cache(maxsize=None)
def _default_retry() -> retry_base:
    """The predicate of a task without ``retry_on``: every `Exception` but those never
    retried. One object shared by all such tasks (tenacity's predicates hold no state): six
    objects a task less for the garbage collector to walk in every full collection of a
    process that keeps a large flow (issue 16)."""
    return (tenacity.retry_if_not_exception_type(_not_retried())
            & tenacity.retry_if_exception_type(Exception))


def _not_retried() -> tuple[type[BaseException], ...]:
    """Interrupts, and programming errors that another attempt cannot fix: a result without
    its produced keys (`MissingOutputError`), a value the store cannot hold
    (`SerializationError`)."""
    from ..errors import MissingOutputError, SerializationError

    return (*never_retried, MissingOutputError, SerializationError)
