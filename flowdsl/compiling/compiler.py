"""Compile a flow's registered `TaskSpec`s into a validated, ordered, immutable `Plan`.

All validation happens here, before any task runs: duplicate ids, unknown dependencies,
cycles, parameter binding, context-key producers. Each step gets a binder, so the runtime's
per-task work is a few dictionary look-ups.
"""

from __future__ import annotations

import contextlib
import gc
import graphlib
import heapq
import inspect
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from .binding import Input, Source, make_binder
from ..errors import (
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    UnknownDependencyError,
    did_you_mean,
)
from .plan import Plan, Step

from ..declaring.spec import EMPTY, MISSING, Param, TaskSpec

__all__ = ["compile_plan", "base_importance"]


def base_importance(spec: TaskSpec, n_dependencies: int) -> int:
    """Importance fixed at compile time: 3 critical, 2 HIGH, 1 NORMAL, 0 LOW or lower,
    +1 for declared context keys, +1 for two or more dependencies (the runtime adds +1
    once the task writes to the shared state)."""
    score = 3 if spec.priority <= 1 else 2 if spec.priority == 2 else 1 if spec.priority == 3 else 0
    if spec.requires or spec.produces:
        score += 1
    if n_dependencies >= 2:
        score += 1
    return score


def _resolve_dependency(item: Any, spec: TaskSpec, ids: dict[str, TaskSpec],
                        by_handler: dict[int, list[str]]) -> str:
    if isinstance(item, str):
        if item not in ids:
            raise UnknownDependencyError(spec.id, item, ids)
        return item
    if not by_handler:  # built on the first dependency given as a function
        for other in ids.values():
            by_handler.setdefault(id(other.handler), []).append(other.id)
    owners = by_handler.get(id(item), [])
    if len(owners) == 1:
        return owners[0]
    label = getattr(item, "__name__", repr(item))
    if not owners:
        raise UnknownDependencyError(spec.id, label, ids)
    raise DefinitionError(
        f"task {spec.id!r} depends on function {label!r}, which is several tasks of this "
        f"flow ({', '.join(map(repr, owners))}): name the task id instead"
    )


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


class _Binding:
    """What one task's signature and keywords resolve to (before producers are known)."""

    __slots__ = ("dependencies", "sources", "inputs", "results_only")

    def __init__(self) -> None:
        self.dependencies: list[str] = []
        self.sources: list[Source] = []  # (kind, parameter name, keyword-only) per parameter
        self.inputs: dict[str, Any] = {}  # key -> default (MISSING: none)
        self.results_only = True  # every parameter is a positional upstream result


def _bind_signature(spec: TaskSpec, ids: dict[str, TaskSpec],
                    by_handler: dict[int, list[str]]) -> _Binding:
    binding = _Binding()
    names = spec.plain_names
    if names is not None and all(name in ids for name in names):  # only upstream results
        binding.dependencies = dependencies = list(names)
        binding.sources = [("result", name, False) for name in names]
        params: tuple[Param, ...] = ()
    else:
        dependencies, params = binding.dependencies, spec.params
    sources = binding.sources
    for param in params:
        name, kind = param.name, param.kind
        if kind in _VARIADIC:
            star = "*" if kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise DefinitionError(
                f"task {spec.id!r}: parameter {star}{name} cannot be bound; "
                "name each input as its own parameter"
            )
        keyword = kind is _KEYWORD_ONLY
        if name in ids:
            dependencies.append(name)
            sources.append(("result", name, keyword))
            if keyword:
                binding.results_only = False
            continue
        binding.results_only = False
        if param.wants_context or name == "context":
            sources.append(("context", name, keyword))
        elif name == "task_input":
            sources.append(("task_input", name, keyword))
        else:
            sources.append(("key", name, keyword))
            binding.inputs[name] = param.default
    for key in spec.requires:
        binding.inputs[key] = MISSING  # a `requires` key has no default
    for item in spec.depends_on:
        dependencies.append(
            item if isinstance(item, str) and item in ids
            else _resolve_dependency(item, spec, ids, by_handler))
    if spec.depends_on:  # may repeat a parameter's dependency (parameter names are unique)
        binding.dependencies = list(dict.fromkeys(dependencies))
    return binding


def _order(specs: Sequence[TaskSpec], bindings: dict[str, _Binding]) -> list[str]:
    """Topological order; among ready tasks the lowest priority value, then declaration order."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for spec in specs:
        sorter.add(spec.id, *bindings[spec.id].dependencies)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise CycleError(exc.args[1]) from None  # each member feeds the next
    # heap entries (priority, declaration index, id): the lowest priority value, then the
    # earliest declared, among the tasks whose dependencies are done
    rank = {spec.id: (spec.priority, position, spec.id) for position, spec in enumerate(specs)}
    heap = [rank[task] for task in sorter.get_ready()]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        task = heapq.heappop(heap)[2]
        order.append(task)
        sorter.done(task)
        for ready in sorter.get_ready():
            heapq.heappush(heap, rank[ready])
    return order


class _Ancestry:
    """Ancestor sets as int bitsets, computed on first use (only flows with context keys pay)."""

    def __init__(self, order: list[str], bindings: dict[str, _Binding]) -> None:
        self._order = order
        self._bindings = bindings
        self.position: dict[str, int] = {}
        self._bits: dict[str, int] | None = None

    def is_ancestor(self, upstream: str, task: str) -> bool:
        if self._bits is None:
            bits: dict[str, int] = {}
            position = self.position = {node: i for i, node in enumerate(self._order)}
            for node in self._order:
                acc = 0
                for dep in self._bindings[node].dependencies:
                    acc |= bits[dep] | (1 << position[dep])
                bits[node] = acc
            self._bits = bits
        return bool(self._bits[task] >> self.position[upstream] & 1)


def _bind_producers(order: list[str], by_id: dict[str, TaskSpec], bindings: dict[str, _Binding],
                    ancestry: _Ancestry) -> dict[str, dict[str, str]]:
    """Check producers of each key are ordered; bind each declared input to its producer."""
    producers: dict[str, list[str]] = {}
    for task in order:  # plan order
        for key in by_id[task].produces:
            producers.setdefault(key, []).append(task)
    for key, tasks in producers.items():
        if key in by_id:
            raise DefinitionError(
                f"{key!r} is both a task id and a context key produced by "
                f"{', '.join(map(repr, tasks))}: rename one of them"
            )
        for earlier, later in zip(tasks, tasks[1:]):
            if not ancestry.is_ancestor(earlier, later):
                raise DefinitionError(
                    f"context key {key!r} is produced by {earlier!r} and {later!r}, neither of "
                    f"which is upstream of the other: add depends_on=[{earlier!r}] to {later!r} "
                    "(or the reverse) so the value is well defined"
                )
    bound: dict[str, dict[str, str]] = {}
    if not producers:  # no task produces a key: every input is looked up
        return bound
    for task in order:
        inputs = bindings[task].inputs
        if not inputs:
            continue
        chosen: dict[str, str] = {}
        for key in inputs:
            candidates = [p for p in producers.get(key, ()) if p != task]
            if not candidates:
                continue
            upstream = [p for p in candidates if ancestry.is_ancestor(p, task)]
            if not upstream:
                raise DefinitionError(
                    f"task {task!r} reads context key {key!r}, which only "
                    f"{', '.join(map(repr, candidates))} produce(s), not upstream of {task!r}: "
                    f"add depends_on=[{candidates[-1]!r}] to {task!r}"
                )
            chosen[key] = upstream[-1]  # the latest: producers are ordered by ancestry
        bound[task] = chosen
    return bound


@contextlib.contextmanager
def _gc_paused():  # type: ignore[no-untyped-def]
    """Compiling allocates tens of thousands of long-lived objects; the cyclic collector
    would rescan them repeatedly for nothing (a third of the time of a 10,000-task compile)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_plan(flow: str, specs: Sequence[TaskSpec], serializer: str = "json",
                 pools: Mapping[str, int] | None = None) -> Plan:
    """Validate ``specs`` (in declaration order) and build the flow's `Plan`."""
    with _gc_paused():
        return _compile(flow, specs, serializer, dict(pools or {}))


def _compile(flow: str, specs: Sequence[TaskSpec], serializer: str,
             pools: dict[str, int]) -> Plan:
    by_id: dict[str, TaskSpec] = {}
    for spec in specs:
        if spec.id in by_id:
            raise DuplicateTaskError(spec.id)
        by_id[spec.id] = spec

    for spec in specs:
        if spec.pool is not None and spec.pool not in pools:
            raise DefinitionError(
                f"task {spec.id!r} uses pool {spec.pool!r}, which flow {flow!r} does not declare"
                + did_you_mean(spec.pool, pools)
                + f": Flow({flow!r}, pools={{{spec.pool!r}: N}}) or flow.pool({spec.pool!r}, N)"
            )
    by_handler: dict[int, list[str]] = {}  # handler -> task ids, filled only when needed
    bindings = {spec.id: _bind_signature(spec, by_id, by_handler) for spec in specs}
    order = _order(specs, bindings)
    ancestry = _Ancestry(order, bindings)
    producer_of = _bind_producers(order, by_id, bindings, ancestry)

    steps: list[Step] = []
    inputs: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {task: [] for task in order}
    for position, task in enumerate(order):
        spec, binding = by_id[task], bindings[task]
        chosen = producer_of.get(task, EMPTY)
        dependencies = tuple(binding.dependencies)
        declared = [Input(key, chosen.get(key), default)
                    for key, default in binding.inputs.items()] if binding.inputs else ()
        for inp in declared:
            if inp.producer is None and inp.default is MISSING:
                inputs.setdefault(inp.key, []).append(task)
        for dep in dependencies:
            children[dep].append(task)
        steps.append(
            Step(
                id=task,
                name=spec.name,
                position=position,
                spec=spec,
                handler=spec.handler,
                is_async=spec.is_async,
                priority=spec.priority,
                critical=spec.priority <= 1,
                dependencies=dependencies,
                requires=spec.requires,
                produces=spec.produces,
                inputs=tuple(binding.inputs),
                producers=MappingProxyType(chosen) if chosen else EMPTY,
                retries=spec.retries,
                retry_wait=spec.retry_wait,
                retry_on=spec.retry_on,
                timeout=spec.timeout,
                importance=base_importance(spec, len(dependencies)),
                serializer=spec.serializer or serializer,
                pool=spec.pool,
                bind=make_binder(task, binding.sources, declared, dependencies,
                                 binding.results_only),
            )
        )
    return Plan(
        flow=flow,
        steps=steps,
        order=order,
        inputs=tuple(inputs),
        input_readers={key: tuple(readers) for key, readers in inputs.items()},
        children={task: tuple(c) for task, c in children.items()},
        index={step.id: step for step in steps},
        pools=pools,
        is_async=any(step.is_async for step in steps),
    )
