"""`TaskSpec`: everything a decorator captured about one task. Data only, no behaviour."""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import attrs
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from .caching import Cache

# Converters of sequence fields: typed ones, as attrs' mypy plugin needs (not ``tuple``).
def tuple_of_str(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def tuple_of_any(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


__all__ = ["MISSING", "EMPTY", "Param", "TaskSpec", "TRIGGERS", "KEY_PREFIX", "tuple_of_str",
           "tuple_of_any"]

#: When a task runs, given its upstream statuses (``trigger=``); the first is the default.
TRIGGERS = ("all_succeeded", "none_failed", "all_done")
#: ``bind={"param": "key:NAME"}`` reads context key NAME (any other string is a task id).
KEY_PREFIX = "key:"


class _Missing:
    """Marks an absent value (no default, key not found)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

#: The one empty read-only mapping (no reads, no delta yet, no producers).
EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class Param:
    """One parameter of a handler, read once at decoration time."""

    name: str
    kind: inspect._ParameterKind
    default: Any = MISSING
    wants_context: bool = False  # annotated TaskContext (also as a string)


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True)
class TaskSpec:
    """What one ``@flow.task`` (or ``flow.add_task``) declared.

    ``depends_on`` holds ids or decorated functions as given (resolved by the compiler);
    ``retry_wait`` and ``retry_on`` are tenacity strategy objects.
    """

    id: str
    name: str
    handler: Callable[..., Any] = attrs.field(eq=False)
    is_async: bool
    params: tuple[Param, ...] = attrs.field(converter=tuple_of_any)
    depends_on: tuple[Any, ...] = attrs.field(converter=tuple_of_any, default=())
    priority: int = 3
    requires: tuple[str, ...] = attrs.field(converter=_tuple_of_str, default=())
    produces: tuple[str, ...] = attrs.field(converter=_tuple_of_str, default=())
    retries: int = 0
    retry_wait: wait_base
    retry_on: retry_base
    timeout: float | None = None
    serializer: str | None = None  # "json" or "pickle" for the run store; None: the flow's
    #: the parameter names when every parameter is plain (positional, not the
    #: context or task_input): the compiler's fast path when they all name tasks
    plain_names: tuple[str, ...] | None = None
    pool: str | None = None  # a named resource pool capping how many such tasks run at once
    #: ``bind=``: (parameter, source) pairs; source a task id, a decorated function or "key:NAME"
    bind: tuple[tuple[str, Any], ...] = attrs.field(converter=tuple_of_any, default=())
    #: ``map_over=``: the handler parameters whose bound values are mapped (zipped)
    map_over: tuple[str, ...] = attrs.field(converter=tuple_of_str, default=())
    #: ``run_if=``: a predicate evaluated once when the task is ready; None: always run
    run_if: Callable[..., Any] | None = attrs.field(default=None, eq=False)
    run_if_params: tuple[Param, ...] = attrs.field(converter=tuple_of_any, default=())
    #: where the predicate's parameters come from, by name (set by ``Flow.include`` only:
    #: the decorator's ``bind=`` does not apply to a predicate)
    run_if_bind: tuple[tuple[str, Any], ...] = attrs.field(converter=tuple_of_any, default=())
    trigger: str = "all_succeeded"  # one of TRIGGERS
    #: the ``Flow.include`` prefixes this task was copied through (outermost first); () if own
    included: tuple[str, ...] = attrs.field(converter=tuple_of_str, default=())
    #: True for the task ``"<prefix>"`` that gathers an included sub-flow's terminal results
    gathers: bool = False
    #: for an included task: (context key, the name its ``task_input`` shows it under), so
    #: seed-style handlers of a sub-flow read the names they were written with
    task_input_names: tuple[tuple[str, str], ...] = attrs.field(converter=tuple_of_any,
                                                                default=())
    #: ``cache=``: True, False, a `Cache`, or None (the flow's policy)
    cache: Cache | bool | None = None
    #: hooks, called with the task's event once its state change is final (never part of
    #: the fingerprint): ``on_success(TaskFinished)``, ``on_failure(TaskFinished)``,
    #: ``on_retry(TaskRetrying)``
    on_success: Callable[[Any], Any] | None = attrs.field(default=None, eq=False)
    on_failure: Callable[[Any], Any] | None = attrs.field(default=None, eq=False)
    on_retry: Callable[[Any], Any] | None = attrs.field(default=None, eq=False)

    @property
    def critical(self) -> bool:
        """A priority of 1 or lower makes a task critical: its failure stops the run."""
        return self.priority <= 1
