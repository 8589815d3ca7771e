"""The Dask executor: each attempt's handler runs on a dask.distributed worker.

The driver keeps the plan, the context, the run store, retries and timeouts (the same
`Scheduler` as the concurrent executor's); only handlers travel. Each attempt is submitted with
``pure=False`` (a retry is a new key) and Dask's ``priority=`` set so that flowdsl's
lower-runs-first holds. A task whose argument is an upstream task's result gets the upstream
*future*, so the value does not travel through the driver twice. A handler that takes
``context`` or ``task_input`` gets a copy built on the driver (declared inputs and the shared
state at submission); its writes come back with the result and become its delta.

``distributed`` is imported only when this executor is used (``pip install "flowdsl[dask]"``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import cloudpickle
from distributed import Client, LocalCluster, get_worker

from .. import version
from ..compiling.plan import Plan, Step
from ..errors import (DefinitionError, FlowError, SerializationError, TaskTimeoutError,
                      error_text)
from ..running.attempts import Args, Kwargs, Means
from ..running.context import CurrentTask, TaskContext, TaskRecord, _current
from ..running.runtime import Run
from .base import AsyncSleep, Executor, Sleep
from .concurrent import check_limit, slot_wait
from .scheduler import Scheduler, ranks
from .slots import Slots

__all__ = ["DaskExecutor"]


class _ContextCopy:
    """Stands for the run's context in arguments sent to a worker; rebuilt there."""

    __slots__ = ("run_id", "data", "shared_state", "previous_results", "results")

    def __init__(self, context: TaskContext, dependencies: tuple[str, ...]) -> None:
        self.run_id = context.task_id
        self.data = dict(context.data)
        self.shared_state = dict(context.shared_state)
        self.previous_results = list(context.previous_results)
        self.results = {dep: context.results[dep] for dep in dependencies}  # for get_result

    def __getstate__(self) -> tuple[Any, ...]:
        return self.run_id, self.data, self.shared_state, self.previous_results, self.results

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.run_id, self.data, self.shared_state, self.previous_results, self.results = state

    def build(self) -> TaskContext:
        context = TaskContext(self.run_id, self.data)
        dict.update(context.shared_state, self.shared_state)  # as found: not a write
        context.seed(self.previous_results, self.results)
        return context


class _Interrupted:
    """Carries a KeyboardInterrupt, SystemExit or CancelledError raised by a handler back to
    the driver, as raised (it stops the run there)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _keeping_cancel(call: Any) -> Any:
    """An async handler's own CancelledError, kept as raised (leaving the worker's loop
    through ``run_coroutine_threadsafe`` would turn it into a bare one)."""
    try:
        return await call
    except asyncio.CancelledError as exc:
        return _Interrupted(exc)


def _worker_version() -> str:
    return version.__version__


def _rebuild(value: Any, copy: _ContextCopy | None, context: TaskContext | None) -> Any:
    """Swap the context stand-ins of one argument for the worker's context."""
    if copy is None:
        return value
    if value is copy:
        return context
    if type(value) is dict and value.get("context") is copy:  # the seed's task_input
        return {**value, "context": context, "shared_state": context.shared_state,  # type: ignore[union-attr]
                "previous_results": context.previous_results}  # type: ignore[union-attr]
    return value


def run_on_worker(handler: Any, is_async: bool, task_id: str, run_id: str, attempt: int,
                  copy: _ContextCopy | None, args: Args, kwargs: Kwargs,
                  upstream: frozenset[Any] = frozenset(),
                  ) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """What a worker executes for one attempt: the handler, under a record that catches its
    writes to the context copy. Returns ``(result, delta, trace entries it logged)``.

    ``upstream`` names the arguments (positions and keywords) that Dask filled with an
    upstream attempt's outcome: their value is its result, the outcome's first item."""
    context = copy.build() if copy is not None else None
    args = tuple(a[0] if i in upstream else _rebuild(a, copy, context) for i, a in enumerate(args))
    kwargs = {k: v[0] if k in upstream else _rebuild(v, copy, context) for k, v in kwargs.items()}
    record = TaskRecord(task_id, 0, 0)
    if context is not None:  # writes from threads the handler starts are its own too
        context.shared_state.in_flight = {task_id: record}
    token = _current.set(CurrentTask(task_id, run_id, record, attempt))
    try:
        if is_async:  # on the worker's own event loop
            loop = get_worker().loop.asyncio_loop  # type: ignore[attr-defined]
            result = asyncio.run_coroutine_threadsafe(_keeping_cancel(handler(*args, **kwargs)),
                                                      loop).result()
        else:
            result = handler(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError) as exc:  # stop the run instead
        result = _Interrupted(exc)
    finally:
        _current.reset(token)
    delta = dict(record.delta)
    logged = context.execution_trace if context is not None else []
    try:
        cloudpickle.dumps((result, delta, logged))
    except Exception as exc:
        raise SerializationError(
            f"task {task_id!r}: its result cannot be pickled to travel back from the worker: "
            f"{error_text(exc)}") from None
    return result, delta, logged


class DaskAttempts:
    """Runs attempts on a Dask cluster and brings their outcomes back to the driver's loop."""

    def __init__(self, client: Client, context: TaskContext) -> None:
        self.client = client
        self.context = context
        self.futures: dict[str, Any] = {}  # task id -> the future of its completed attempt

    def _arguments(self, step: Step, args: Args, kwargs: Kwargs
                   ) -> tuple[_ContextCopy | None, Args, Kwargs, frozenset[Any]]:
        context = self.context
        wants_context = any(
            a is context or (type(a) is dict and a.get("context") is context)
            for a in (*args, *kwargs.values()))
        copy = _ContextCopy(context, step.dependencies) if wants_context else None
        upstream: set[Any] = set()
        results = context.results

        def convert(where: Any, value: Any) -> Any:
            if copy is not None:
                if value is context:
                    return copy
                if type(value) is dict and value.get("context") is context:
                    return {**value, "context": copy, "shared_state": None,
                            "previous_results": None}
            for dep in step.dependencies:  # an upstream result: send its attempt's future
                future = self.futures.get(dep)
                if (future is not None and results.get(dep) is value
                        and future.status == "finished"):  # still held by a worker
                    upstream.add(where)
                    return future
            return value

        args = tuple(convert(i, a) for i, a in enumerate(args))
        kwargs = {k: convert(k, v) for k, v in kwargs.items()}
        return copy, args, kwargs, frozenset(upstream)

    async def __call__(self, step: Step, current: CurrentTask, args: Args,
                       kwargs: Kwargs) -> Any:
        loop = asyncio.get_running_loop()
        copy, args, kwargs, upstream = self._arguments(step, args, kwargs)
        try:
            future = self.client.submit(
                run_on_worker, step.handler, step.is_async, step.id, current.run_id,
                current.attempt, copy, args, kwargs, upstream,
                key=f"{step.id}-{uuid.uuid4().hex}", pure=False, priority=-step.priority)
        except Exception as exc:  # an argument that cannot be pickled
            raise SerializationError(f"task {step.id!r}: cannot send its arguments to a "
                                     f"worker: {error_text(exc)} (on Dask a resource must "
                                     "pickle too)") from exc
        outcome: asyncio.Future[Any] = loop.create_future()

        def settle(done: Any) -> None:  # in a thread of the client's
            if outcome.done() or loop.is_closed():  # timed out or cancelled: nobody waits
                return
            error: BaseException | None = None
            value: Any = None
            try:
                value = done.result()
            except BaseException as exc:  # the handler's error, as raised on the worker
                error = exc

            def deliver() -> None:
                if outcome.done():
                    return
                if error is not None:
                    outcome.set_exception(error)
                else:
                    outcome.set_result(value)

            try:
                loop.call_soon_threadsafe(deliver)
            except RuntimeError:  # the run's loop closed meanwhile
                pass

        future.add_done_callback(settle)
        try:
            if step.timeout is None:
                result, delta, logged = await outcome
            else:
                done, _ = await asyncio.wait({outcome}, timeout=step.timeout)
                if not done:
                    outcome.cancel()
                    future.cancel()
                    raise TaskTimeoutError(step.id, step.timeout or 0.0)
                result, delta, logged = outcome.result()
        except asyncio.CancelledError:
            outcome.cancel()
            future.cancel()
            raise
        if isinstance(result, _Interrupted):  # an interrupt raised by the handler on the worker
            raise result.error
        self.context.shared_state.apply(delta)  # the worker's writes become the task's delta
        for entry in logged:  # the handler's own log_execution entries
            self.context.trace_log.add(entry)
        if current.index is None:  # (an element's future is not its task's result)
            self.futures[step.id] = future
        return result


class DaskExecutor(Executor):
    """Run each attempt on a Dask cluster: ``DaskExecutor(client_or_address=None)`` takes a
    ``distributed.Client``, a scheduler address, or nothing (a `LocalCluster` is started for
    the run and closed after it). ``max_concurrency`` defaults to the cluster's threads.

    It schedules like the concurrent executor (the same `Scheduler`), with `DaskAttempts` as
    where attempts run; a critical failure also cancels sync attempts in flight (the run stops
    waiting; the worker thread runs on until it returns)."""

    def __init__(self, client_or_address: Client | str | None = None, *,
                 max_concurrency: int | None = None, adaptive: bool = True,
                 sleep: Sleep | None = None, async_sleep: AsyncSleep | None = None) -> None:
        self.max_concurrency = None if max_concurrency is None else check_limit(max_concurrency)
        self.adaptive = adaptive
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.client_or_address = client_or_address

    def uses_event_loop(self, plan: Plan) -> bool:
        return True

    def execute(self, run: Run) -> None:  # pragma: no cover - the façade always uses aexecute
        asyncio.run(self.aexecute(run))

    def _connect(self) -> tuple[Client, LocalCluster | None]:
        target = self.client_or_address
        if isinstance(target, Client):
            return target, None
        if target is None:
            cluster = LocalCluster(dashboard_address=None)
            return Client(cluster), cluster
        return Client(target), None

    def _check(self, client: Client, run: Run) -> None:
        try:
            versions = client.run(_worker_version)
        except Exception as exc:
            raise FlowError(f"flowdsl is not importable on the Dask workers "
                            f"({error_text(exc)}): install flowdsl {version.__version__} there") from exc
        wrong = {worker: v for worker, v in versions.items() if v != version.__version__}
        if wrong:
            raise FlowError(f"Dask workers run another flowdsl version than the driver "
                            f"({version.__version__}): {wrong}")

    def check_plan(self, plan: Any) -> None:
        """Every handler (with its closure) must pickle: checked before the run is opened
        (so a refused flow leaves no run in the store's history)."""
        for step in plan.steps:
            try:
                cloudpickle.dumps(step.handler)
            except Exception as exc:
                raise DefinitionError(f"task {step.id!r}: its handler (with its closure) "
                                      f"cannot be pickled to run on Dask: {error_text(exc)}") from exc

    async def aexecute(self, run: Run) -> None:
        loop = asyncio.get_running_loop()
        client, cluster = await loop.run_in_executor(None, self._connect)
        try:
            await loop.run_in_executor(None, self._check, client, run)
            limit = self.max_concurrency or sum(client.nthreads().values()) or 1
            slots = Slots(limit, run.plan.pools)
            means = Means(submit=DaskAttempts(client, run.context),
                          wait=slot_wait(slots, self.async_sleep))
            history = run.history() if self.adaptive and limit > 1 else None
            await Scheduler(run, slots, means, ranks(run.plan, history),
                            cancels_sync=True).run_all()
        finally:
            if cluster is not None:
                await loop.run_in_executor(None, client.close)
                await loop.run_in_executor(None, cluster.close)

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client_or_address!r}, max_concurrency={self.max_concurrency})"
