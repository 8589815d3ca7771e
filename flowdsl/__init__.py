"""flowdsl: declare a pipeline by decorating plain functions, run it with ``flow.run()``.

    from flowdsl import Flow
    flow = Flow("etl")

    @flow.task
    def extract(source): ...

    @flow.task(retries=2, retry_wait=0)
    def transform(extract): ...

    result = flow.run({"source": "customers.csv"})
"""

from loguru import logger as _logger

from .running.context import DELETED, CurrentTask, TaskContext, TaskRecord, current_task
from .errors import (
    ContextPrunedError,
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    FlowError,
    MapError,
    MissingInputError,
    MissingOutputError,
    ResumeError,
    RunFailedError,
    SerializationError,
    StoreError,
    TaskTimeoutError,
    UnknownDependencyError,
    UntrackedWriteError,
)
from .running.events import (ElementFinished, RunFinished, RunStarted, TaskFinished,
                             TaskMapped, TaskRetrying, TaskStarted)
from .executors import ConcurrentExecutor, Executor, SequentialExecutor
from .flow import Flow
from .measure import OverheadReport, measure_overhead
from .compiling.plan import Plan, Step
from .running.result import RunResult, TaskRun
from .declaring.spec import TaskSpec
from .declaring.caching import Cache
from .status import Priority, RunStatus, TaskPriority, TaskStatus
from .running.strategies import ContextPreservationStrategy, IncrementalContextStrategy

from .version import __version__


def __getattr__(name: str) -> object:
    """Optional parts load on first use, so ``import flowdsl`` stays cheap (no sqlite3)."""
    if name == "SqliteStore":
        from .store import SqliteStore

        return SqliteStore
    if name == "PostgresStore":  # needs the `postgres` extra (psycopg 3)
        from .store.postgres import PostgresStore

        return PostgresStore
    if name == "DaskExecutor":  # needs the `dask` extra
        from .executors.dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'flowdsl' has no attribute {name!r}")


__all__ = [
    "__version__", "Flow", "Cache", "Priority", "TaskPriority", "TaskStatus", "RunStatus",
    "TaskContext", "TaskSpec",
    "Plan", "Step", "RunResult", "TaskRun", "TaskRecord", "DELETED", "CurrentTask",
    "current_task", "ContextPreservationStrategy", "IncrementalContextStrategy", "Executor",
    "SequentialExecutor", "ConcurrentExecutor", "measure_overhead", "OverheadReport",
    "RunStarted", "TaskStarted", "TaskRetrying", "TaskFinished", "RunFinished", "TaskMapped",
    "ElementFinished",
    "FlowError", "DefinitionError", "CycleError", "UnknownDependencyError",
    "DuplicateTaskError", "MapError", "MissingInputError", "MissingOutputError", "TaskTimeoutError",
    "RunFailedError", "ContextPrunedError", "SerializationError", "ResumeError", "StoreError",
    "UntrackedWriteError",
]
# `flowdsl.SqliteStore`, `flowdsl.PostgresStore` and `flowdsl.DaskExecutor` are public too, but
# load on first use (they import sqlite3, psycopg and Dask): they stay out of `__all__`, so
# `from flowdsl import *` stays cheap.

# A library adds no sinks: flowdsl's log records are off until `logger.enable("flowdsl")`.
_logger.disable("flowdsl")
