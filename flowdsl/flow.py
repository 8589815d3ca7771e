"""`Flow`: the registry users decorate into, and the façade that compiles and runs it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar, overload

import attrs

from .compiling.compiler import compile_plan
from .compiling.include import Include, all_pools, expand, make_include
from .compiling.targets import normalize_targets, target_plan
from .declaring.caching import Cache, as_cache
from .declaring.dsl import check_hooks, check_pool_size, check_serializer, make_spec, redefines
from .declaring.hooks import Hooks
from .declaring.types import check_types
from .errors import DefinitionError, did_you_mean
from .running.metrics import FlowMetrics
from .compiling.plan import Plan
from .declaring.retry import DEFAULT_WAIT
from .declaring.spec import TaskSpec
from .status import Priority, RunStatus

# The run side (runtime, executors, observers) is imported by the first run, not by
# `import flowdsl`: declaring and compiling a flow never need it (issue 16).
if TYPE_CHECKING:
    from .starting import RunSide
    from .executors import Executor
    from .running.context import TaskContext
    from .running.result import RunResult
    from .running.strategies import ContextPreservationStrategy

__all__ = ["Flow"]

#: the run side's entry points, once the first run imported them (see `RunSide`)
_run_side: RunSide | None = None


def _load_run_side() -> RunSide:
    global _run_side
    from .starting import RUN_SIDE

    _run_side = RUN_SIDE
    return RUN_SIDE


F = TypeVar("F", bound=Callable[..., Any])


class Flow:
    """A registry of tasks: decorate functions with ``@flow.task``, then ``flow.run()``.

    Each Flow is independent: no process-wide state, so two flows (or two tests) never
    see each other's tasks. The plan is compiled on first use and cached until a task is added.
    """

    def __init__(self, name: str = "flow", *, serializer: str = "json",
                 pools: Mapping[str, int] | None = None, types: Iterable[Any] = (),
                 on_success: Callable[[Any], Any] | None = None,
                 on_failure: Callable[[Any], Any] | None = None,
                 on_retry: Callable[[Any], Any] | None = None,
                 cache: bool | Cache | None = None) -> None:
        check_serializer(serializer, f"flow {name!r}")
        check_hooks({"on_success": on_success, "on_failure": on_failure, "on_retry": on_retry},
                    f"flow {name!r}")
        #: the flow's hooks, run for every task before the task's own
        self.hooks = Hooks(on_success=on_success, on_failure=on_failure, on_retry=on_retry)
        self.name = name
        self.serializer = serializer
        #: the cache policy of tasks that declare none (``cache=True``: `Cache()` for each;
        #: None: unset, so an including flow's policy applies to this flow's tasks)
        self.cache = as_cache(cache, f"flow {name!r}")
        self.types = check_types(types, f"flow {name!r}")
        self._pools: dict[str, int] = {}
        self._specs: list[TaskSpec] = []
        self._positions: dict[str, int] = {}  # task id -> index in _specs (the first declared)
        self._plan: Plan | None = None
        self._includes: list[Include] = []
        self._version = 0  # bumped on every change of the registry (includes see it)
        self._compiled: tuple[Any, list[TaskSpec], dict[tuple[str, ...], Plan]] | None = None
        for pool_name, size in (pools or {}).items():
            self.pool(pool_name, size)
        #: durations and counts of the runs made through this Flow object
        self.metrics = FlowMetrics()

    # -- declaring ------------------------------------------------------------------------
    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        id: str | None = None,
        name: str | None = None,
        depends_on: Iterable[str | Callable[..., Any]] | None = None,
        priority: int = Priority.NORMAL,
        requires: Iterable[str] | None = None,
        produces: Iterable[str] | None = None,
        retries: int = 0,
        retry_wait: Any = None,
        retry_on: Any = None,
        timeout: float | None = None,
        serializer: str | None = None,
        pool: str | None = None,
        bind: Mapping[str, Any] | None = None,
        map_over: str | Iterable[str] | None = None,
        run_if: Callable[..., Any] | None = None,
        trigger: str = "all_succeeded",
        on_success: Callable[[Any], Any] | None = None,
        on_failure: Callable[[Any], Any] | None = None,
        on_retry: Callable[[Any], Any] | None = None,
        cache: bool | Cache | None = None,
    ) -> Callable[[F], F]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        id: str | None = None,
        name: str | None = None,
        depends_on: Iterable[str | Callable[..., Any]] | None = None,
        priority: int = Priority.NORMAL,
        requires: Iterable[str] | None = None,
        produces: Iterable[str] | None = None,
        retries: int = 0,
        retry_wait: Any = None,
        retry_on: Any = None,
        timeout: float | None = None,
        serializer: str | None = None,
        pool: str | None = None,
        bind: Mapping[str, Any] | None = None,
        map_over: str | Iterable[str] | None = None,
        run_if: Callable[..., Any] | None = None,
        trigger: str = "all_succeeded",
        on_success: Callable[[Any], Any] | None = None,
        on_failure: Callable[[Any], Any] | None = None,
        on_retry: Callable[[Any], Any] | None = None,
        cache: bool | Cache | None = None,
    ) -> Any:
        """Declare a task; usable bare (``@flow.task``) or with keywords. Returns the
        function unchanged (still callable and unit-testable).

        Keywords: ``id`` and ``name`` (default: the function's name), ``depends_on`` (task ids
        or decorated functions), ``priority`` (lower runs first; 1 or lower is critical),
        ``requires`` (context keys read), ``produces`` (keys of the returned mapping written
        to the shared state), ``retries`` (extra attempts), ``retry_wait`` (seconds or a
        tenacity wait), ``retry_on`` (exception types or a tenacity retry predicate),
        ``timeout`` (seconds per attempt), ``serializer`` (``"json"`` or ``"pickle"``, for
        the run store), ``pool`` (a resource pool declared with `Flow.pool`), ``on_success`` /
        ``on_failure`` / ``on_retry`` (hooks: ``fn(event)``, after the flow's own), ``cache``
        (True or `Cache(ttl=..., key=...)`: reuse a result of an earlier run in the store;
        False: never; default: the flow's ``cache=``). The README's
        "Declaring tasks" section shows each one."""
        if fn is not None and not callable(fn):
            raise TypeError(f"@{self.name}.task takes keywords (id={fn!r}?), not {fn!r}")

        def register(function: F) -> F:
            self._register(make_spec(
                function, id=id, name=name, depends_on=depends_on, priority=priority,
                requires=requires, produces=produces, retries=retries, retry_wait=retry_wait,
                retry_on=retry_on, timeout=timeout, serializer=serializer, pool=pool,
                bind=bind, map_over=map_over, run_if=run_if, trigger=trigger,
                on_success=on_success, on_failure=on_failure, on_retry=on_retry, cache=cache,
            ))
            return function

        return register if fn is None else register(fn)

    def add_task(
        self,
        task_id: str,
        name: str,
        handler: Callable[..., Any],
        dependencies: Iterable[str | Callable[..., Any]] | None = None,
        priority: int = Priority.NORMAL,
        *,
        max_retries: int = 3,
        timeout_seconds: float | None = None,
        context_requirements: Iterable[str] | None = None,
        output_context_keys: Iterable[str] | None = None,
        retry_wait: Any = DEFAULT_WAIT,
        retry_on: Any = None,
        serializer: str | None = None,
    ) -> TaskSpec:
        """The seed program's imperative form, with its defaults (NORMAL priority, 3 retries
        backing off 1 s, 2 s, 4 s)."""
        spec = make_spec(
            handler, id=task_id, name=name, depends_on=dependencies, priority=priority,
            requires=context_requirements, produces=output_context_keys, retries=max_retries,
            retry_wait=retry_wait, retry_on=retry_on, timeout=timeout_seconds,
            serializer=serializer,
        )
        self._register(spec)
        return spec

    def pool(self, name: str, size: int) -> None:
        """Declare (or resize) a resource pool: at most ``size`` tasks with ``pool=name`` run
        at once, whatever ``max_concurrency`` is."""
        check_pool_size(name, size)
        self._pools[name] = size
        self._changed()

    @property
    def pools(self) -> Mapping[str, int]:
        """Declared pools: name -> size."""
        return dict(self._pools)

    def _register(self, spec: TaskSpec) -> None:
        position = self._positions.get(spec.id)
        if position is not None and redefines(self._specs[position], spec):
            self._specs[position] = spec  # a notebook cell run again: the new definition wins
        else:
            self._positions.setdefault(spec.id, len(self._specs))
            self._specs.append(spec)  # a duplicate id is refused by compile()
        self._changed()

    def _changed(self) -> None:
        self._plan = None
        self._compiled = None
        self._version += 1

    # -- sub-flows ---------------------------------------------------------------------------
    def include(self, other: "Flow", *, prefix: str, inputs: Mapping[str, Any] | None = None,
                depends_on: Iterable[str | Callable[..., Any]] | None = None) -> None:
        """Copy ``other``'s tasks in at each compile as ``"<prefix>.<id>"`` (its produced keys
        prefixed too), its inputs wired by ``inputs`` (like ``bind=``), its first tasks after
        ``depends_on``; a task ``"<prefix>"`` gathers ``{terminal id: result}``."""
        self._includes.append(make_include(self, other, prefix, inputs, depends_on, self._specs,
                                           self._includes))
        self._changed()

    def hook_scopes(self) -> dict[tuple[str, ...], Hooks]:
        """Include path -> the hooks of the flow included there, for included flows that
        declare any (their hooks follow their tasks)."""
        scopes: dict[tuple[str, ...], Hooks] = {}
        for inc in self._includes:
            other = inc.flow
            hooks = getattr(other, "hooks", None)
            if isinstance(hooks, Hooks) and hooks:
                scopes[(inc.prefix,)] = attrs.evolve(hooks, owner=f"flow {other.name!r}'s")
            inner = getattr(other, "hook_scopes", None)
            if inner is not None:
                for path, found in inner().items():
                    scopes[(inc.prefix,) + tuple(path)] = found
        return scopes

    def _all_pools(self) -> dict[str, int]:
        return all_pools(self._pools, self._includes)

    def _all_types(self) -> tuple[Any, ...]:
        return self.types + tuple(t for f in self.included_flows() for t in f._all_types())

    def included_flows(self) -> tuple["Flow", ...]:
        """The flows this one includes (directly)."""
        return tuple(inc.flow for inc in self._includes)  # type: ignore[misc]

    def _stamp(self) -> tuple[Any, ...]:
        return (self._version, tuple(inc.flow._stamp() for inc in self._includes))

    def expanded_specs(self) -> list[TaskSpec]:
        """This flow's tasks with included flows' copies in place (what compile() sees)."""
        return self._compile_cache()[1]

    def _compile_cache(self) -> tuple[Any, list[TaskSpec], dict[tuple[str, ...], Plan]]:
        stamp = self._stamp()
        if self._compiled is None or self._compiled[0] != stamp:
            self._plan = None
            self._compiled = (stamp, expand(self.name, self._specs, self._includes), {})
        return self._compiled

    # -- looking ----------------------------------------------------------------------------
    def spec(self, fn_or_id: str | Callable[..., Any]) -> TaskSpec:
        """The `TaskSpec` this flow recorded for a task id or a decorated function."""
        if isinstance(fn_or_id, str):
            for spec in self._specs:
                if spec.id == fn_or_id:
                    return spec
            raise KeyError(f"flow {self.name!r} has no task {fn_or_id!r}"
                           + did_you_mean(fn_or_id, self.task_ids))
        found = [spec for spec in self._specs if spec.handler is fn_or_id]
        if len(found) == 1:
            return found[0]
        label = getattr(fn_or_id, "__name__", repr(fn_or_id))
        if not found:
            raise KeyError(f"{label!r} is not a task of flow {self.name!r}")
        raise DefinitionError(f"{label!r} is several tasks of flow {self.name!r} "
                              f"({', '.join(repr(s.id) for s in found)}): ask by task id")

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Task ids in declaration order."""
        return tuple(spec.id for spec in self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, task_id: object) -> bool:
        return any(spec.id == task_id for spec in self._specs)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(tuple(self._specs))

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, tasks={len(self._specs)})"

    # -- compiling and running --------------------------------------------------------------
    def compile(self, targets: Iterable[str] | None = None) -> Plan:
        """Validate the flow and return its ordered `Plan` (cached until a task is added).
        With ``targets``, the plan of those tasks and their ancestors (cached too)."""
        if targets is None and self._plan is not None and not self._includes:
            return self._plan  # (a change clears it; an included flow's change needs the stamp)
        _, specs, by_targets = self._compile_cache()
        if self._plan is None:
            self._plan = compile_plan(self.name, specs, self.serializer, self._all_pools(),
                                      self._all_types(), self.cache)
        if targets is None:
            return self._plan
        wanted = normalize_targets(self._plan, targets)
        plan = by_targets.get(wanted)
        if plan is None:
            plan = by_targets[wanted] = target_plan(self._plan, wanted)
        return plan

    def run(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        context_strategy: ContextPreservationStrategy | None = None,
        run_id: str | None = None,
        observers: Iterable[Any] | None = None,
        executor: Executor | None = None,
        store: Any = None,
        resume: str | None = None,
        force: bool = False,
        max_concurrency: int | None = None,
        adaptive: bool = True,
        raise_on_failure: bool = True,
        targets: Iterable[str] | None = None,
        resources: Mapping[str, Any] | None = None,
        cache: bool = True,
    ) -> RunResult:
        """Run the flow and return its `RunResult`. Definition errors and missing inputs raise
        before any task.

        A run that ends FAILED raises `RunFailedError` once it has finished (every
        independent task ran; with a store, everything is journalled): its message names
        each failed task and its error, it is chained to the first task error, and its
        ``.result`` is the whole `RunResult`. ``raise_on_failure=False`` returns the FAILED
        result instead (check ``.status``, or call ``.raise_for_status()`` later).

        A flow of sync handlers runs inline in this thread, with no event loop. A flow with
        async handlers gets one event loop for the run (a private one in a helper thread when
        called from inside a running loop, as in a notebook).

        With ``store`` (a path or a `SqliteStore`) the run is journalled and can be continued
        later with ``resume=run_id``: completed tasks are restored, the others run.
        ``force=True`` resumes after the flow or its inputs changed, keeping only the
        completed tasks unaffected by the change.

        ``resources={"db": conn}``: a parameter named like a resource receives the object;
        resources are never stored, hashed or copied and must be given again on resume.

        ``max_concurrency=N`` runs up to N ready tasks at once (async handlers on one loop,
        sync ones in N threads); ``adaptive`` then prefers, among ready tasks of equal
        priority, the longest expected critical path (from earlier runs' durations).

        With a store, tasks declared ``cache=`` (or all, with ``Flow(cache=True)``) reuse a
        result of an earlier run whose fingerprint and inputs match; ``cache=False`` neither
        reads nor writes the cache for this run.
        """
        side = _run_side or _load_run_side()  # the run side loads on the first run
        executor = side.choose_executor(executor, max_concurrency, adaptive)
        run = side.start_run(self, executor, initial, context_strategy, run_id, observers, store,
                        resume, force, targets, resources, cache)
        try:
            if not executor.uses_event_loop(run.plan):
                result = side.drive(executor, run)
            elif side.loop_running():
                result = side.in_helper_thread(
                    lambda: side.run_on_new_loop(side.adrive(executor, run)))
            else:
                result = side.run_on_new_loop(side.adrive(executor, run))
        except BaseException as exc:
            # asyncio.run turns Ctrl-C into a fresh KeyboardInterrupt: carry the result over
            if getattr(exc, "flowdsl_result", None) is None and run.final is not None:
                exc.flowdsl_result = run.final  # type: ignore[attr-defined]
            self._record_interrupted(exc)
            raise
        return self._finished(result, raise_on_failure)

    async def arun(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        context_strategy: ContextPreservationStrategy | None = None,
        run_id: str | None = None,
        observers: Iterable[Any] | None = None,
        executor: Executor | None = None,
        store: Any = None,
        resume: str | None = None,
        force: bool = False,
        max_concurrency: int | None = None,
        adaptive: bool = True,
        raise_on_failure: bool = True,
        targets: Iterable[str] | None = None,
        resources: Mapping[str, Any] | None = None,
        cache: bool = True,
    ) -> RunResult:
        """``await flow.arun(...)``: the native form in async code (same keywords as `run`;
        a FAILED run raises `RunFailedError` unless ``raise_on_failure=False``)."""
        side = _run_side or _load_run_side()  # the run side loads on the first run
        executor = side.choose_executor(executor, max_concurrency, adaptive)
        run = side.start_run(self, executor, initial, context_strategy, run_id, observers, store,
                        resume, force, targets, resources, cache)
        try:
            result = await side.adrive(executor, run)
        except BaseException as exc:
            self._record_interrupted(exc)
            raise
        return self._finished(result, raise_on_failure)

    async def execute_sequence(self, initial_context: Mapping[str, Any] | None = None,
                               sequence_id: str | None = None, **options: Any) -> TaskContext:
        """The seed program's entry point: run the flow (``await``) and return its
        `TaskContext`. A failed run does not raise (the seed's didn't): read the outcome in
        ``context.metadata["execution_summary"]`` or ``context.execution_trace``.

        ``sequence_id`` is the run id; ``options`` are `arun`'s keywords. The context's
        metadata gets the seed's ``sequence_id``, ``start_time``, ``end_time`` (ISO text) and
        ``execution_summary`` (the run's summary, with its ``status``).
        """
        start = datetime.now()
        options["raise_on_failure"] = False
        result = await self.arun(initial_context, run_id=sequence_id, **options)
        context = result.context
        context.metadata.update({
            "sequence_id": result.run_id,
            "start_time": start.isoformat(),
            "end_time": datetime.now().isoformat(),
            "execution_summary": {**result.summary, "status": result.status.value},
        })
        return context

    def _finished(self, result: RunResult, raise_on_failure: bool) -> RunResult:
        """Keep the run's metrics; raise `RunFailedError` for a FAILED run when asked."""
        self.metrics.record(result)
        if raise_on_failure and result.status is RunStatus.FAILED:
            raise result.failure() from result.error
        return result

    def _record_interrupted(self, exc: BaseException) -> None:
        from .running.result import RunResult

        result = getattr(exc, "flowdsl_result", None)
        if isinstance(result, RunResult):
            self.metrics.record(result)

    def explain_schedule(self, store: Any = None) -> dict[str, Any]:
        """The expected durations and critical paths adaptive scheduling will use (from the
        run store's history when given, else from this Flow object's earlier runs)."""
        from .executors.schedule import explain

        plan = self.compile()
        if store is None:
            return explain(plan, self.metrics.durations())
        from .store import open_store

        store = open_store(store)
        return explain(plan, store.durations(self.name))

    def get_execution_metrics(self) -> dict[str, Any]:
        """The seed's metrics: totals across this flow's runs, the last 10 durations per task,
        and the last run's context efficiency, context size and status counts."""
        return self.metrics.report()
