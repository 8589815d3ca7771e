"""Turn what a decorator (or ``add_task``) was given into a validated `TaskSpec`.

The handler's signature is read here, once; the function itself is never wrapped.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Iterable

from ..errors import DefinitionError
from .retry import as_retry, as_wait
from .spec import MISSING, Param, TaskSpec

__all__ = ["make_spec", "read_params", "is_async_callable", "check_serializer", "check_pool_size",
           "SERIALIZERS"]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, partials of them and objects with ``async __call__``."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)
    )


def _wants_context(annotation: Any) -> bool:
    if isinstance(annotation, str):  # `from __future__ import annotations`
        return annotation == "TaskContext" or annotation.endswith(".TaskContext")
    return getattr(annotation, "__name__", None) == "TaskContext" and getattr(
        annotation, "__module__", ""
    ).startswith("flowdsl")


def read_params(fn: Callable[..., Any], task: str) -> tuple[Param, ...]:
    """The handler's parameters, as the compiler will bind them."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"task {task!r}: cannot read the handler's signature: {exc}") from exc
    return tuple(
        Param(
            name=p.name,
            kind=p.kind,
            default=MISSING if p.default is inspect.Parameter.empty else p.default,
            wants_context=_wants_context(p.annotation),
        )
        for p in signature.parameters.values()
    )


def _ids(value: Any, keyword: str, task: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or callable(value):
        value = (value,)
    elif isinstance(value, (set, frozenset)):  # no order of its own: make one
        value = sorted(value, key=lambda item: item if isinstance(item, str) else repr(item))
    items = tuple(value)
    for item in items:
        if not (isinstance(item, str) or callable(item)):
            raise DefinitionError(
                f"task {task!r}: {keyword} takes task ids or decorated functions, got {item!r}"
            )
    return items


def _keys(value: Iterable[str] | str | None, keyword: str, task: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: tuple[Any, ...] = (value,)
    elif isinstance(value, (set, frozenset)):  # no order of its own: make one, whatever the hash seed
        items = tuple(sorted(value, key=str))
    else:
        items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise DefinitionError(f"task {task!r}: {keyword} takes context keys (str), got {item!r}")
    if len(set(items)) != len(items):
        raise DefinitionError(f"task {task!r}: {keyword} lists a key twice: {list(items)!r}")
    return items


def make_spec(
    fn: Callable[..., Any],
    *,
    id: str | None = None,
    name: str | None = None,
    depends_on: Any = None,
    priority: int = 3,
    requires: Any = None,
    produces: Any = None,
    retries: int = 0,
    retry_wait: Any = None,
    retry_on: Any = None,
    timeout: float | None = None,
    serializer: str | None = None,
    pool: str | None = None,
) -> TaskSpec:
    """Validate one task's keywords and capture them in a frozen `TaskSpec`."""
    if not callable(fn):
        raise DefinitionError(f"a task handler must be callable, got {fn!r}")
    task_id = id if id is not None else getattr(fn, "__name__", None)
    if not isinstance(task_id, str) or not task_id:
        raise DefinitionError(f"cannot name the task of {fn!r}: pass id='...'")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise DefinitionError(f"task {task_id!r}: priority must be an int, got {priority!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DefinitionError(f"task {task_id!r}: retries must be an int >= 0, got {retries!r}")
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise DefinitionError(
                f"task {task_id!r}: timeout must be a number of seconds > 0, got {timeout!r}"
            )
        timeout = float(timeout)
    check_serializer(serializer, f"task {task_id!r}", allow_none=True)
    if pool is not None and (not isinstance(pool, str) or not pool):
        raise DefinitionError(f"task {task_id!r}: pool must be a pool name (str), got {pool!r}")
    params = read_params(fn, task_id)
    return TaskSpec(
        id=task_id,
        name=name if name is not None else task_id,
        handler=fn,
        is_async=is_async_callable(fn),
        params=params,
        depends_on=_ids(depends_on, "depends_on", task_id),
        priority=int(priority),
        requires=_keys(requires, "requires", task_id),
        produces=_keys(produces, "produces", task_id),
        retries=retries,
        retry_wait=as_wait(retry_wait, task_id),
        retry_on=as_retry(retry_on, task_id),
        timeout=timeout,
        serializer=serializer,
        pool=pool,
        plain_names=_plain_names(params),
    )


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _plain_names(params: tuple[Param, ...]) -> tuple[str, ...] | None:
    for param in params:
        if (param.kind not in _POSITIONAL or param.wants_context
                or param.name in ("context", "task_input")):
            return None
    return tuple(param.name for param in params)


SERIALIZERS = ("json", "pickle")


def check_pool_size(name: Any, size: Any) -> None:
    """Pool names are str, sizes ints >= 1."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"a pool name must be a non-empty str, got {name!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DefinitionError(f"pool {name!r}: size must be an int >= 1, got {size!r}")


def check_serializer(value: Any, where: str, allow_none: bool = False) -> None:
    """Refuse a serializer name the run store does not know."""
    if value is None and allow_none:
        return
    if value not in SERIALIZERS:
        raise DefinitionError(f"{where}: serializer must be 'json' or 'pickle', got {value!r}")
