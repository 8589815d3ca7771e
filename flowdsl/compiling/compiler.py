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
from typing import AbstractSet, Any, Iterable, Mapping, Sequence

from .binding import Input, Source, make_binder, results_binder
from .producers import Ancestry, bind_producers, cycle_detail, infer_edges, prune_inferred, producers_of
from ..errors import (
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    UnknownDependencyError,
    did_you_mean,
)
from .plan import Plan, Step

from ..declaring.caching import Cache, resolve_cache
from ..declaring.spec import EMPTY, KEY_PREFIX, MISSING, Param, TaskSpec
from ..declaring.types import declared_types, return_annotation

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
    """What one task's signature, predicate and keywords resolve to (producers come later).

    A task whose parameters are all positional upstream results (the common shape) keeps
    them as ``results`` and builds no per-parameter `Source`: `sources` makes them on demand.
    Fields a task does not use hold a shared empty value, replaced when written: a compile
    of 10,000 tasks allocates a few objects per task, not a dozen.
    """

    __slots__ = ("dependencies", "results", "own_sources", "inputs", "results_only",
                 "inferred", "cond_sources", "cond_inputs")

    def __init__(self, dependencies: list[str], results: tuple[str, ...] | None) -> None:
        self.dependencies = dependencies
        #: the parameter names when each is the positional result of the task it names
        self.results = results
        self.own_sources: list[Source] = []  # (kind, parameter, keyword-only, ref) otherwise
        self.inputs: Mapping[str, Any] = EMPTY  # key -> default (MISSING: none)
        self.results_only = results is not None  # every parameter is a positional result
        self.inferred: Mapping[str, str] = EMPTY  # producer id -> the key that inferred it
        self.cond_sources: Sequence[Source] = ()  # the run_if predicate's parameters
        self.cond_inputs: Mapping[str, Any] = EMPTY

    @property
    def sources(self) -> Sequence[Source]:
        """Where each handler parameter's value comes from."""
        if self.results is None:
            return self.own_sources
        return [("result", name, False, name) for name in self.results]

    def keys(self) -> Iterable[str]:
        """Every context key the task reads (handler and predicate)."""
        if not self.cond_inputs:
            return self.inputs
        return dict.fromkeys([*self.inputs, *self.cond_inputs])


def _bind_source(spec: TaskSpec, param: str, source: Any, ids: dict[str, TaskSpec],
                 by_handler: dict[int, list[str]]) -> tuple[str, str]:
    """``bind=`` / include wiring: ("result", task id) or ("key", NAME)."""
    if isinstance(source, str):
        if source.startswith(KEY_PREFIX):
            return "key", source[len(KEY_PREFIX):]
        if source not in ids:
            raise DefinitionError(
                f"task {spec.id!r}: bind[{param!r}] names unknown task {source!r}"
                + did_you_mean(source, ids)
                + f" (for a context key write 'key:{source}')")
        return "result", source
    return "result", _resolve_dependency(source, spec, ids, by_handler)


def _bind_params(spec: TaskSpec, params: Sequence[Param], rebound: Mapping[str, Any],
                 ids: dict[str, TaskSpec], by_handler: dict[int, list[str]],
                 dependencies: list[str], sources: list[Source], inputs: dict[str, Any],
                 what: str = "parameter") -> bool:
    """Bind each parameter by the rules of DESIGN (``rebound`` first); returns True when
    every parameter is a positional upstream result."""
    results_only = True
    for param in params:
        name, kind = param.name, param.kind
        if kind in _VARIADIC:
            star = "*" if kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise DefinitionError(
                f"task {spec.id!r}: {what} {star}{name} cannot be bound; "
                "name each input as its own parameter"
            )
        keyword = kind is _KEYWORD_ONLY
        if name in rebound:
            where, ref = _bind_source(spec, name, rebound[name], ids, by_handler)
            if where == "result":
                dependencies.append(ref)
                sources.append(("result", name, keyword, ref))
                results_only = results_only and not keyword
            else:
                sources.append(("key", name, keyword, ref))
                inputs.setdefault(ref, param.default)
                results_only = False
            continue
        if name in ids:
            dependencies.append(name)
            sources.append(("result", name, keyword, name))
            if keyword:
                results_only = False
            continue
        results_only = False
        if param.wants_context or name == "context":
            sources.append(("context", name, keyword, name))
        elif name == "task_input":
            sources.append(("task_input", name, keyword, name))
        else:
            sources.append(("key", name, keyword, name))
            inputs.setdefault(name, param.default)
    return results_only


def _bind_signature(spec: TaskSpec, ids: dict[str, TaskSpec],
                    by_handler: dict[int, list[str]]) -> _Binding:
    names = spec.plain_names
    if names is not None and all(map(ids.__contains__, names)):  # only upstream results
        binding = _Binding(list(names), names)
        dependencies = binding.dependencies
    else:
        binding = _Binding([], None)
        dependencies = binding.dependencies
        inputs: dict[str, Any] = {}
        binding.results_only = _bind_params(spec, spec.params, dict(spec.bind) if spec.bind
                                            else EMPTY, ids, by_handler, dependencies,
                                            binding.own_sources, inputs)
        binding.inputs = inputs
    if spec.requires:
        # a `requires` key has no default
        binding.inputs = {**binding.inputs, **dict.fromkeys(spec.requires, MISSING)}
    for item in spec.depends_on:
        dependencies.append(
            item if isinstance(item, str) and item in ids
            else _resolve_dependency(item, spec, ids, by_handler))
    if spec.run_if is not None:
        cond_sources: list[Source] = []
        cond_inputs: dict[str, Any] = {}
        _bind_params(spec, spec.run_if_params, dict(spec.run_if_bind), ids, by_handler,
                     dependencies, cond_sources, cond_inputs, "run_if predicate parameter")
        binding.cond_sources, binding.cond_inputs = cond_sources, cond_inputs
    if spec.depends_on or spec.bind or spec.run_if is not None:
        binding.dependencies = list(dict.fromkeys(dependencies))  # may repeat a dependency
    return binding


def _order(specs: Sequence[TaskSpec], bindings: dict[str, _Binding]) -> list[str]:
    """Topological order; among ready tasks the lowest priority value, then declaration order."""
    if _declared_in_order(specs, bindings):
        return [spec.id for spec in specs]
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for spec in specs:
        sorter.add(spec.id, *bindings[spec.id].dependencies)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]  # each member feeds the next
        raise CycleError(cycle, cycle_detail(cycle, bindings)) from None
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


def _declared_in_order(specs: Sequence[TaskSpec], bindings: dict[str, _Binding]) -> bool:
    """Whether declaration order is already the order `_order` would compute: each task
    declared after its dependencies, priorities never decreasing. Then, once the tasks
    before it are done, the next declared task is ready and no ready task beats it (each is
    declared later with the same or a higher priority value); and with every edge pointing
    back there is no cycle. Most flows are declared this way; the check is one set look-up
    per edge, a tenth of what graphlib and the heap cost."""
    seen: set[str] = set()
    last = specs[0].priority if specs else 0
    for spec in specs:
        if spec.priority < last or not seen.issuperset(bindings[spec.id].dependencies):
            return False
        last = spec.priority
        seen.add(spec.id)
    return True


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
                 pools: Mapping[str, int] | None = None, types: Sequence[Any] = (),
                 cache: Cache | bool | None = None) -> Plan:
    """Validate ``specs`` (in declaration order) and build the flow's `Plan`; ``types`` are
    the flow's declared value types (``Flow(types=...)``), ``cache`` its cache policy (for
    tasks that declare none)."""
    with _gc_paused():
        return _compile(flow, specs, serializer, dict(pools or {}), types, cache)


def _declared(specs: Sequence[TaskSpec], types: Sequence[Any]) -> dict[str, type]:
    """The value types the flow declares: ``types`` and the handlers' return annotations
    (an unresolvable one is a `DefinitionError` naming the task)."""
    roots = list(types)
    for spec in specs:  # a few attribute look-ups per task: compiles stay fast
        annotations = getattr(spec.handler, "__annotations__", None)
        if annotations and "return" in annotations:
            roots.append(return_annotation(spec.handler, spec.id))
    return declared_types(roots)


def _compile(flow: str, specs: Sequence[TaskSpec], serializer: str,
             pools: dict[str, int], types: Sequence[Any] = (),
             flow_cache: Cache | bool | None = None) -> Plan:
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
    producers = producers_of(specs)  # one pass over the tasks; empty: no key is an edge
    if producers:
        infer_edges(producers, bindings, by_id)
    order = _order(specs, bindings)
    ancestry = Ancestry(order, bindings)
    if producers:
        prune_inferred(bindings, ancestry)
    producer_of = bind_producers(order, producers, bindings, ancestry)

    steps: list[Step] = []
    inputs: dict[str, list[str]] = {}
    mapped = {spec.id for spec in specs if spec.map_over}  # their results are lists
    for position, task in enumerate(order):
        spec, binding = by_id[task], bindings[task]
        chosen = producer_of.get(task, EMPTY) if producer_of else EMPTY
        results = binding.results
        if results is not None and len(binding.dependencies) == len(results):
            dependencies = results  # the same names (a parameter appears once): no new tuple
        else:
            dependencies = tuple(binding.dependencies)
        declared = [_input(key, chosen.get(key), default, mapped)
                    for key, default in binding.inputs.items()] if binding.inputs else ()
        for inp in declared:
            if inp.producer is None and inp.default is MISSING:
                inputs.setdefault(inp.key, []).append(task)
        tolerant = None
        if spec.trigger != "all_succeeded":  # a dependency may not have completed
            tolerant = {p.name: p.default for p in spec.params}
        if results is not None and not declared and tolerant is None:
            bind = results_binder(results)  # the common shape, no Source to read
        else:
            bind = make_binder(task, binding.sources, declared, dependencies,
                               binding.results_only, tolerant, spec.included,
                               dict(spec.task_input_names) if spec.task_input_names else None)
        condition = None
        if spec.run_if is not None:
            cond_declared = [_input(key, chosen.get(key), default, mapped)
                             for key, default in binding.cond_inputs.items()]
            for inp in cond_declared:
                if inp.producer is None and inp.default is MISSING and inp.key not in binding.inputs:
                    inputs.setdefault(inp.key, []).append(task)
            condition = make_binder(task, binding.cond_sources, cond_declared, dependencies,
                                    tolerant={p.name: p.default for p in spec.run_if_params}
                                    if tolerant is not None else None)
        cache = resolve_cache(spec.cache, flow_cache) if spec.cache is not None or flow_cache \
            else None
        cache_inputs, uncacheable = _cache_inputs(binding.sources) if cache else ((), None)
        # Step._make with the fields in order: a third of the time of keyword arguments
        # (35 of them, 10,000 steps: ~10 ms); tests/test_compiler.py checks each field by name
        steps.append(Step._make((
            task,  # id
            spec.name,  # name
            position,  # position
            spec,  # spec
            spec.handler,  # handler
            spec.is_async,  # is_async
            spec.priority,  # priority
            spec.priority <= 1,  # critical
            dependencies,  # dependencies
            spec.requires,  # requires
            spec.produces,  # produces
            tuple(binding.inputs),  # inputs
            MappingProxyType(chosen) if chosen else EMPTY,  # producers
            spec.retries,  # retries
            spec.retry_wait,  # retry_wait
            spec.retry_on,  # retry_on
            spec.timeout,  # timeout
            base_importance(spec, len(dependencies)),  # importance
            spec.serializer or serializer,  # serializer
            spec.pool,  # pool
            bind,  # bind
            MappingProxyType(dict(binding.inferred)) if binding.inferred else EMPTY,  # inferred
            spec.map_over,  # map_over
            _map_positions(spec, binding.sources) if spec.map_over else (),  # map_positions
            spec.run_if,  # run_if
            condition,  # condition
            spec.trigger,  # trigger
            spec.included,  # included
            spec.gathers,  # gathers
            cache,  # cache
            cache_inputs,  # cache_inputs
            uncacheable,  # uncacheable
        )))
    return Plan(
        flow=flow,
        steps=steps,
        order=order,
        inputs=tuple(inputs),
        input_readers={key: tuple(readers) for key, readers in inputs.items()},
        index={step.id: step for step in steps},
        pools=pools,
        is_async=any(step.is_async for step in steps),
        conditional=any(step.run_if is not None for step in steps),
        types=_declared(specs, types),
    )


def _input(key: str, producer: str | None, default: Any, mapped: AbstractSet[str]) -> Input:
    """A declared input; produced by a mapped task, its value is the list of its elements'."""
    return Input(key, producer, default, producer in mapped)


def _cache_inputs(sources: Sequence[Source]
                  ) -> tuple[tuple[tuple[str, int | str, str | None], ...], str | None]:
    """The parameters that key a cached task's entry (task results and context keys, with
    their place in the binder's output and, for a context key, its name: a resource's is
    left out at run time), and the parameter that makes the task uncacheable (``context`` or
    ``task_input``), if any."""
    found: list[tuple[str, int | str, str | None]] = []
    index = 0
    uncacheable = None
    for kind, name, keyword, ref in sources:
        if kind in ("result", "key"):
            found.append((name, name if keyword else index, ref if kind == "key" else None))
        elif kind in ("context", "task_input") and uncacheable is None:
            uncacheable = name
        if not keyword:
            index += 1
    return tuple(found), uncacheable


def _map_positions(spec: TaskSpec, sources: Sequence[Source]) -> tuple[int | str, ...]:
    """Where each ``map_over`` parameter sits in the binder's output: its index in ``args``,
    or its name in ``kwargs`` (keyword-only)."""
    where: dict[str, int | str] = {}
    index = 0
    for _, name, keyword, _ in sources:
        if keyword:
            where[name] = name
        else:
            where[name] = index
            index += 1
    return tuple(where[name] for name in spec.map_over)
