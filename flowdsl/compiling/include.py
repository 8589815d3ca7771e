"""Sub-flows: copy an included flow's tasks into its parent, prefixed (DESIGN "Sub-flows").

The copy is made at each compile of the parent. An included task ``t`` becomes
``"<prefix>.t"``; the keys the sub-flow produces become ``"<prefix>.<key>"``; every parameter
is wired explicitly (``bind``), so a parent task or key of the same name never captures it.
Inputs of the sub-flow are bound as ``inputs`` maps them (like ``bind=``), others keep their
names. A task ``"<prefix>"`` gathers the sub-flow's terminal results: ``{terminal id: result}``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import attrs

from ..declaring.dsl import make_spec
from ..declaring.spec import KEY_PREFIX, Param, TaskSpec, tuple_of_any
from ..errors import DefinitionError, MissingOutputError, did_you_mean

__all__ = ["Include", "Includable", "Gather", "Renamed", "AsyncRenamed", "expand",
           "check_include", "make_include", "all_pools"]


class Includable(Protocol):
    """What including needs of a flow: its name, its expanded tasks and its plan."""

    name: str

    def expanded_specs(self) -> Sequence[TaskSpec]: ...

    def compile(self) -> Any: ...

    def included_flows(self) -> Iterable["Includable"]: ...

    def _all_pools(self) -> dict[str, int]: ...

    def _stamp(self) -> tuple[Any, ...]: ...


@attrs.frozen(kw_only=True)
class Include:
    """One ``flow.include(...)`` call."""

    flow: Includable = attrs.field(eq=False)
    prefix: str
    inputs: tuple[tuple[str, Any], ...] = attrs.field(converter=tuple_of_any, default=())
    depends_on: tuple[Any, ...] = attrs.field(converter=tuple_of_any, default=())
    position: int  # how many of the parent's own tasks were declared before it


class Gather:
    """The handler of the task ``"<prefix>"``: ``{terminal id: result}`` (ids unprefixed).

    A plain callable the runtime calls like any handler; its signature names one parameter
    per terminal task (``r0``, ``r1``, ...), each bound to that task's result.
    """

    def __init__(self, terminals: Sequence[str]) -> None:
        self.terminals = tuple(terminals)
        self.__signature__ = inspect.Signature([
            inspect.Parameter(f"r{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for i in range(len(self.terminals))])

    def __call__(self, *results: Any) -> dict[str, Any]:
        return dict(zip(self.terminals, results))

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (Dask) without its signature object
        return (Gather, (self.terminals,))

    def __repr__(self) -> str:
        return f"Gather({list(self.terminals)!r})"


class Renamed:
    """The handler of an included task that produces keys: calls the sub-flow's handler and
    adds each produced key under its prefixed name (``rows`` -> ``ingest.rows``), so the
    runtime writes prefixed keys like any task's. ``__wrapped__`` is the original (its code
    is the task's fingerprint)."""

    def __init__(self, handler: Callable[..., Any], task: str, keys: Sequence[tuple[str, str]]):
        self.__wrapped__ = handler
        self.task = task
        self.keys = tuple(keys)  # (key the handler returns, prefixed key)

    def _rename(self, result: Any) -> Any:
        if not isinstance(result, Mapping):
            raise MissingOutputError(self.task, self.keys[0][0], result)
        renamed = dict(result)
        for inner, outer in self.keys:
            if inner not in result:
                raise MissingOutputError(self.task, inner, result)
            renamed[outer] = result[inner]
        return renamed

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rename(self.__wrapped__(*args, **kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.__wrapped__, self.task, self.keys))


class AsyncRenamed(Renamed):
    """`Renamed` for an async handler."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rename(await self.__wrapped__(*args, **kwargs))


def all_pools(own: Mapping[str, int], includes: Sequence[Include]) -> dict[str, int]:
    """A flow's pools plus those of the flows it includes (its own sizes win)."""
    pools: dict[str, int] = {}
    for inc in includes:
        pools.update(inc.flow._all_pools())
    pools.update(own)
    return pools


def make_include(parent: Includable, other: Any, prefix: Any, inputs: Any, depends_on: Any,
                 own: Sequence[TaskSpec], includes: Sequence[Include]) -> Include:
    """Check one ``include()`` call and record it (at the parent's current position)."""
    check_include(parent, other, prefix, (s.id for s in own), (inc.prefix for inc in includes))
    if inputs is not None and not isinstance(inputs, Mapping):
        raise DefinitionError(f"flow {parent.name!r}: include inputs= takes a mapping "
                              f"{{sub-flow key: source}}, got {inputs!r}")
    if isinstance(depends_on, str) or callable(depends_on):
        depends_on = (depends_on,)
    return Include(flow=other, prefix=prefix, inputs=tuple((inputs or {}).items()),
                   depends_on=tuple(depends_on or ()), position=len(own))


def check_include(parent: Includable, other: Any, prefix: Any, own_ids: Iterable[str],
                  prefixes: Iterable[str]) -> None:
    """What ``include()`` can refuse at once: a non-flow, a bad prefix, a clash, a cycle."""
    if not hasattr(other, "expanded_specs"):
        raise DefinitionError(f"flow {parent.name!r}: include() takes a Flow, got {other!r}")
    if not isinstance(prefix, str) or not prefix or "." in prefix:
        raise DefinitionError(f"flow {parent.name!r}: include prefix must be a non-empty str "
                              f"without '.', got {prefix!r}")
    if prefix in set(own_ids):
        raise DefinitionError(f"flow {parent.name!r}: include prefix {prefix!r} clashes with "
                              f"the task {prefix!r}: choose another prefix")
    if prefix in set(prefixes):
        raise DefinitionError(f"flow {parent.name!r}: include prefix {prefix!r} is already "
                              "used by another include: choose another prefix")
    if _reaches(other, parent):
        raise DefinitionError(f"flow {parent.name!r} cannot include flow {other.name!r}: "
                              f"{other.name!r} is {parent.name!r} or includes it (an include cycle)")


def _reaches(start: Includable, target: Includable, seen: set[int] | None = None) -> bool:
    if start is target:
        return True
    seen = set() if seen is None else seen
    if id(start) in seen:
        return False
    seen.add(id(start))
    return any(_reaches(inner, target, seen) for inner in start.included_flows())


def expand(parent: str, own: Sequence[TaskSpec], includes: Sequence[Include]) -> list[TaskSpec]:
    """The parent's own tasks with each include's copies inserted where it was declared."""
    if not includes:
        return list(own)
    own_ids = {spec.id for spec in own}
    parent_ids = set(own_ids)
    sub_specs = []
    for inc in includes:
        if inc.prefix in own_ids:
            raise DefinitionError(f"flow {parent!r}: include prefix {inc.prefix!r} clashes with "
                                  f"the task {inc.prefix!r}: choose another prefix")
        specs = inc.flow.expanded_specs()
        sub_specs.append(specs)
        parent_ids.add(inc.prefix)
        parent_ids.update(f"{inc.prefix}.{spec.id}" for spec in specs)
    result: list[TaskSpec] = []
    done = 0
    for inc, specs in zip(includes, sub_specs):
        result.extend(own[done:inc.position])
        done = inc.position
        result.extend(_copy(parent, inc, specs, parent_ids))
    result.extend(own[done:])
    return result


def _copy(parent: str, inc: Include, specs: Sequence[TaskSpec],
          parent_ids: set[str]) -> list[TaskSpec]:
    plan = inc.flow.compile()  # the sub-flow must be valid on its own
    prefix = inc.prefix
    ids = {spec.id for spec in specs}
    produced = {key for spec in specs for key in spec.produces}
    read: set[str] = set(plan.inputs)
    for step in plan.steps:
        read.update(step.inputs)
        read.update(step.producers)
    inputs = dict(inc.inputs)
    for key in inputs:
        if key not in read:
            raise DefinitionError(
                f"flow {parent!r}: include {prefix!r} maps input {key!r}, which no task of flow "
                f"{inc.flow.name!r} reads" + did_you_mean(key, read))
    owners: dict[int, list[str]] = {}
    for spec in specs:
        owners.setdefault(id(spec.handler), []).append(spec.id)

    def task_ref(item: Any, where: str) -> str:
        if isinstance(item, str):
            return f"{prefix}.{item}"
        found = owners.get(id(item), [])
        if len(found) != 1:
            raise DefinitionError(f"flow {parent!r}: include {prefix!r}: {where} names function "
                                  f"{getattr(item, '__name__', item)!r}, which is not one task "
                                  f"of flow {inc.flow.name!r}")
        return f"{prefix}.{found[0]}"

    def key_source(key: str) -> Any:
        """Where a key read inside the sub-flow comes from, as a bind source."""
        if key in produced:
            return KEY_PREFIX + f"{prefix}.{key}"
        if key not in inputs:
            return KEY_PREFIX + key
        source = inputs[key]
        if callable(source):
            return source  # a parent task's function: its result
        if not isinstance(source, str) or not source:
            raise DefinitionError(f"flow {parent!r}: include {prefix!r}: inputs[{key!r}] takes a "
                                  f"task id, a decorated function or a key name, got {source!r}")
        if source.startswith(KEY_PREFIX) or source not in parent_ids:
            return source if source.startswith(KEY_PREFIX) else KEY_PREFIX + source
        return source  # a parent task id: its result

    def rewire(params: Sequence[Param], given: Mapping[str, Any], where: str) -> tuple[Any, ...]:
        pairs = []
        for param in params:
            name = param.name
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue  # refused by the sub-flow's own compile
            if name in given:
                source = given[name]
                if isinstance(source, str) and source.startswith(KEY_PREFIX):
                    pairs.append((name, key_source(source[len(KEY_PREFIX):])))
                else:
                    pairs.append((name, task_ref(source, where)))
            elif name in ids:
                pairs.append((name, f"{prefix}.{name}"))
            elif param.wants_context or name in ("context", "task_input"):
                continue
            else:
                pairs.append((name, key_source(name)))
        return tuple(pairs)

    def required(key: str, task: str) -> str:
        source = key_source(key)
        if not isinstance(source, str) or not source.startswith(KEY_PREFIX):
            raise DefinitionError(f"flow {parent!r}: include {prefix!r} maps input {key!r} to a "
                                  f"task result, but {task!r} lists it in requires=: map it to a "
                                  "context key ('key:NAME')")
        return source[len(KEY_PREFIX):]

    roots = {step.id for step in plan.steps if not step.dependencies}
    copies = []
    for spec in specs:
        depends_on = [task_ref(item, f"task {spec.id!r}'s depends_on") for item in spec.depends_on]
        if spec.id in roots:
            depends_on.extend(inc.depends_on)
        new_id = f"{prefix}.{spec.id}"
        handler = spec.handler
        if spec.produces:
            keys = [(key, f"{prefix}.{key}") for key in spec.produces]
            if isinstance(handler, Renamed):  # included twice: rename the outer names only
                keys = [(inner, f"{prefix}.{outer}") for inner, outer in handler.keys]
                handler = handler.__wrapped__
            handler = (AsyncRenamed if spec.is_async else Renamed)(handler, new_id, keys)
        shown = dict(spec.task_input_names)
        requires = tuple(required(key, spec.id) for key in spec.requires)
        copies.append(attrs.evolve(
            spec,
            id=new_id,
            handler=handler,
            task_input_names=tuple((new, shown.get(old, old))
                                   for old, new in zip(spec.requires, requires)),
            name=spec.name if spec.name != spec.id else f"{prefix}.{spec.id}",
            depends_on=tuple(depends_on),
            requires=requires,
            produces=tuple(f"{prefix}.{key}" for key in spec.produces),
            bind=rewire(spec.params, dict(spec.bind), f"task {spec.id!r}'s bind"),
            run_if_bind=rewire(spec.run_if_params, dict(spec.run_if_bind),
                               f"task {spec.id!r}'s run_if"),
            plain_names=None,
            included=(prefix, *spec.included),
            # the included flow's cache= policy, for its tasks that declare none
            cache=spec.cache if spec.cache is not None else getattr(inc.flow, "cache", None),
        ))
    terminals = [step.id for step in plan.steps if not plan.children[step.id]]
    conditional = any(spec.run_if is not None for spec in specs)
    copies.append(gatherer(prefix, terminals, conditional))
    return copies


def gatherer(prefix: str, terminals: Sequence[str], conditional: bool = False) -> TaskSpec:
    """The task ``"<prefix>"``: depends on every terminal task, returns their results. In a
    sub-flow with ``run_if`` tasks it gathers with ``trigger="none_failed"``: a terminal task
    skipped by a false condition gives None; a failure still skips it."""
    handler: Callable[..., Any] = Gather(terminals)
    spec = make_spec(handler, id=prefix,
                     bind={f"r{i}": f"{prefix}.{t}" for i, t in enumerate(terminals)},
                     trigger="none_failed" if conditional else "all_succeeded")
    return attrs.evolve(spec, included=(prefix,), gathers=True)
