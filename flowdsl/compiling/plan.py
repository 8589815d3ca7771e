"""The compiled, immutable plan: what the runtime executes, with everything precomputed."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, TypeAlias

import attrs
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from ..declaring.caching import Cache
from ..declaring.spec import EMPTY, TaskSpec, tuple_of_any, tuple_of_str

if TYPE_CHECKING:  # binders read the run's context
    from ..running.context import TaskContext

__all__ = ["Step", "Plan", "Binder", "Reads"]

#: What a binder read: key -> value, or the positional arguments when they are exactly the
#: values of the step's ``inputs``, in order (no dict per task; see `TaskRecord.reads`).
Reads: TypeAlias = "Mapping[str, Any] | tuple[Any, ...]"
#: ``bind(context) -> (args, kwargs, reads)``: a step's arguments, from the run's context.
Binder = Callable[["TaskContext"], "tuple[tuple[Any, ...], dict[str, Any], Reads]"]




def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view; a dict handed over (the compiler's own, fresh) is not copied."""
    if not value:
        return EMPTY
    return MappingProxyType(value if type(value) is dict else dict(value))


class Step(NamedTuple):
    """One task, ready to run: its policies plus how to bind its arguments.

    Immutable. A NamedTuple rather than an attrs class because a compile builds one per task
    and attrs' frozen ``__init__`` takes twice as long (10,000 tasks: ~7 ms of ~100).
    """

    id: str
    name: str
    position: int
    spec: TaskSpec
    handler: Callable[..., Any]
    is_async: bool
    priority: int
    critical: bool
    dependencies: tuple[str, ...]
    requires: tuple[str, ...]
    produces: tuple[str, ...]
    inputs: tuple[str, ...]  # declared context inputs: requires + context-key parameters
    producers: Mapping[str, str]  # input key -> its producer's id (read-only)
    retries: int
    retry_wait: wait_base
    retry_on: retry_base
    timeout: float | None
    importance: int  # 0..5 at compile time; +1 at run time once the task writes
    serializer: str  # how the run store encodes its result and delta
    pool: str | None  # resource pool, or None
    bind: Binder
    #: inferred dependencies: producer id -> the context key that made the edge
    inferred: Mapping[str, str] = EMPTY
    map_over: tuple[str, ...] = ()  # mapped parameters (zipped); () for an unmapped task
    #: per mapped parameter, its place in the binder's output: index in args, or kwarg name
    map_positions: tuple[int | str, ...] = ()
    run_if: Callable[..., Any] | None = None  # the predicate, or None
    condition: Binder | None = None  # binds the predicate's arguments, like ``bind``
    trigger: str = "all_succeeded"  # "all_succeeded" | "none_failed" | "all_done"
    included: tuple[str, ...] = ()  # include prefixes it was copied through; () if own
    gathers: bool = False  # the "<prefix>" task gathering an included sub-flow's results
    cache: Cache | None = None  # the cache policy it runs with (its own, else the flow's)
    #: the parameters whose values key the cache: (name, index in args or kwarg name,
    #: the context key it reads or None for a task result)
    cache_inputs: tuple[tuple[str, int | str, str | None], ...] = ()
    #: the parameter (``context``/``task_input``) that keeps a cached task from the cache
    uncacheable: str | None = None

    def __repr__(self) -> str:
        return (f"Step(id={self.id!r}, position={self.position}, priority={self.priority}, "
                f"dependencies={self.dependencies!r}, produces={self.produces!r})")


@attrs.frozen(kw_only=True)
class Plan:
    """An immutable, validated, ordered plan of one flow.

    ``order`` is the execution order at concurrency 1; ``inputs`` the context keys the
    caller must supply (``input_readers`` names who reads each).
    """

    flow: str
    steps: tuple[Step, ...] = attrs.field(converter=tuple_of_any, repr=False)
    order: tuple[str, ...] = attrs.field(converter=tuple_of_str)
    inputs: tuple[str, ...] = attrs.field(converter=tuple_of_str)
    input_readers: Mapping[str, tuple[str, ...]] = attrs.field(converter=_frozen_map, repr=False)
    index: Mapping[str, Step] = attrs.field(converter=_frozen_map, repr=False)  # id -> step
    pools: Mapping[str, int] = attrs.field(converter=_frozen_map, factory=dict)  # name -> size
    is_async: bool
    #: whether a step has a ``run_if`` predicate (the runtime then gates every ready task)
    conditional: bool = False
    #: the target tasks this plan was cut to (``flow.compile(targets=...)``); () for all tasks
    targets: tuple[str, ...] = attrs.field(converter=tuple_of_str, default=())
    #: the value types the flow's code declares (``module.qualname`` -> class): what the run
    #: store may decode typed values into (``Flow(types=...)``, return annotations)
    types: Mapping[str, type] = attrs.field(converter=_frozen_map, factory=dict, repr=False)
    #: Derived data computed on first use (task fingerprints), never part of equality.
    derived: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    #: the ids of the ``map_over`` steps, in plan order, derived from ``steps`` once here so
    #: a run without mapped tasks pays no per-task ``map_over`` check (issue 16)
    mapped: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    @mapped.default
    def _mapped(self) -> tuple[str, ...]:
        return tuple(step.id for step in self.steps if step.map_over)

    @property
    def children(self) -> Mapping[str, tuple[str, ...]]:
        """Task id -> the tasks that depend on it, in plan order. Computed on first use
        (a sequential run never asks), then kept."""
        found: Mapping[str, tuple[str, ...]] | None = self.derived.get("children")
        if found is None:
            lists: dict[str, list[str]] = {step.id: [] for step in self.steps}
            for step in self.steps:
                for dependency in step.dependencies:
                    lists[dependency].append(step.id)
            found = self.derived["children"] = MappingProxyType(
                {task: tuple(children) for task, children in lists.items()})
        return found

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, task_id: str) -> Step:
        return self.index[task_id]
