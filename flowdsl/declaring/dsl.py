"""Turn what a decorator (or ``add_task``) was given into a validated `TaskSpec`.

The handler's signature is read here, once; the function itself is never wrapped.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Iterable, Mapping

from ..errors import DefinitionError, did_you_mean
from .caching import as_cache
from .retry import as_retry, as_wait
from .spec import KEY_PREFIX, MISSING, TRIGGERS, Param, TaskSpec

__all__ = ["make_spec", "read_params", "read_predicate_params", "redefines", "is_async_callable",
           "check_serializer", "check_pool_size", "check_hooks", "SERIALIZERS", "HOOKS"]


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
    bind: Any = None,
    map_over: Any = None,
    run_if: Any = None,
    trigger: str = "all_succeeded",
    cache: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
    on_retry: Any = None,
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
    bound = _bind(bind, params, task_id)
    mapped = _map_over(map_over, params, bound, task_id)
    if run_if is not None and not callable(run_if):
        raise DefinitionError(f"task {task_id!r}: run_if takes a predicate (a callable), "
                              f"got {run_if!r}")
    if run_if is not None and is_async_callable(run_if):
        raise DefinitionError(f"task {task_id!r}: run_if predicate {_name(run_if)} is async; "
                              "a predicate must be a plain function (it is evaluated on the "
                              "driver when the task is ready, before any attempt starts)")
    if trigger not in TRIGGERS:
        raise DefinitionError(f"task {task_id!r}: unknown trigger {trigger!r}"
                              + did_you_mean(str(trigger), TRIGGERS)
                              + f"; use one of {', '.join(map(repr, TRIGGERS))}")
    hooks = {"on_success": on_success, "on_failure": on_failure, "on_retry": on_retry}
    check_hooks(hooks, f"task {task_id!r}")
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
        plain_names=None if bound else _plain_names(params),
        bind=bound,
        map_over=mapped,
        run_if=run_if,
        run_if_params=read_predicate_params(run_if, task_id) if run_if is not None else (),
        trigger=trigger,
        cache=as_cache(cache, f"task {task_id!r}"),
        **hooks,
    )


def _name(fn: Any) -> str:
    return repr(getattr(fn, "__qualname__", None) or type(fn).__name__)


def redefines(earlier: TaskSpec, later: TaskSpec) -> bool:
    """A redefinition (a notebook cell run again): handlers with the same ``__module__`` and
    ``__qualname__`` (a partial or a callable object without a qualname never is)."""
    old, new = earlier.handler, later.handler
    qualname = getattr(new, "__qualname__", None)
    if qualname is None:
        return False
    return (getattr(old, "__module__", None) == getattr(new, "__module__", None)
            and getattr(old, "__qualname__", None) == qualname)


def read_predicate_params(predicate: Callable[..., Any], task: str) -> tuple[Param, ...]:
    """A ``run_if`` predicate's parameters: bound like a handler's, except ``task_input`` and
    ``*args``/``**kwargs``, which cannot be."""
    try:
        params = read_params(predicate, task)
    except DefinitionError as exc:
        raise DefinitionError(f"task {task!r}: run_if predicate: {exc}") from None
    for param in params:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise DefinitionError(
                f"task {task!r}: run_if predicate parameter {star}{param.name} cannot be bound; "
                "name each value it reads (a task id or a context key) as its own parameter")
        if param.name == "task_input":
            raise DefinitionError(
                f"task {task!r}: run_if predicate parameter 'task_input' cannot be bound; "
                "name the task results or context keys it reads as parameters")
    return params


def _bind(value: Any, params: tuple[Param, ...], task: str) -> tuple[tuple[str, Any], ...]:
    """Validate ``bind={"param": source}``: each parameter exists, each source is a task id,
    a decorated function or ``"key:NAME"`` (task ids are checked by the compiler)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise DefinitionError(f"task {task!r}: bind takes a mapping {{parameter: source}}, "
                              f"got {value!r}")
    names = [p.name for p in params if p.kind not in _VARIADIC]
    pairs = []
    for param, source in value.items():
        if param not in names:
            raise DefinitionError(
                f"task {task!r}: bind names parameter {param!r}, which the handler does not "
                f"have" + did_you_mean(str(param), names)
                + f" (its parameters: {', '.join(names) or 'none'})")
        if isinstance(source, str):
            if not source or source == KEY_PREFIX:
                raise DefinitionError(f"task {task!r}: bind[{param!r}] is empty: give a task "
                                      "id, a decorated function or 'key:NAME'")
        elif not callable(source):
            raise DefinitionError(
                f"task {task!r}: bind[{param!r}] takes a task id, a decorated function or "
                f"'key:NAME', got {source!r}")
        pairs.append((param, source))
    return tuple(pairs)


def _map_over(value: Any, params: tuple[Param, ...], bound: tuple[tuple[str, Any], ...],
              task: str) -> tuple[str, ...]:
    """Validate ``map_over="param"`` (or a tuple of parameters, zipped)."""
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value) if isinstance(
        value, (tuple, list)) else None
    if not items or not all(isinstance(item, str) and item for item in items):
        raise DefinitionError(f"task {task!r}: map_over takes a parameter name or a tuple of "
                              f"them, got {value!r}")
    if len(set(items)) != len(items):
        raise DefinitionError(f"task {task!r}: map_over names a parameter twice: {list(items)!r}")
    by_name = {p.name: p for p in params if p.kind not in _VARIADIC}
    rebound = {name for name, _ in bound}
    for item in items:
        param = by_name.get(item)
        if param is None:
            raise DefinitionError(
                f"task {task!r}: map_over names parameter {item!r}, which the handler does not "
                "have" + did_you_mean(item, by_name)
                + f" (its parameters: {', '.join(by_name) or 'none'})")
        if item not in rebound and (param.wants_context or item in ("context", "task_input")):
            raise DefinitionError(f"task {task!r}: map_over cannot map parameter {item!r}: it "
                                  "receives the live context, not a value")
    return items


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


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


#: The hook keywords of ``@flow.task`` and ``Flow(...)``.
HOOKS = ("on_success", "on_failure", "on_retry")


def check_hooks(hooks: Mapping[str, Any], where: str) -> None:
    """Each hook is None or a callable taking the event."""
    for keyword, hook in hooks.items():
        if hook is not None and not callable(hook):
            raise DefinitionError(f"{where}: {keyword} takes a callable fn(event), got {hook!r}")
