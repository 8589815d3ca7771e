"""flowdsl: declare a pipeline by decorating plain functions, run it with ``flow.run()``.

    from flowdsl import Flow
    flow = Flow("etl")

    @flow.task
    def extract(source): ...

    @flow.task(retries=2, retry_wait=0)
    def transform(extract): ...

    result = flow.run({"source": "customers.csv"})
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from loguru import logger as _logger

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
from .flow import Flow
from .compiling.plan import Plan, Step
from .declaring.spec import TaskSpec
from .declaring.caching import Cache
from .status import Priority, RunStatus, TaskPriority, TaskStatus

from .version import __version__

if TYPE_CHECKING:  # the names below load on first use (see `__getattr__`)
    from .running.context import DELETED, CurrentTask, TaskContext, TaskRecord, current_task
    from .running.events import (ElementFinished, RunFinished, RunStarted, TaskFinished,
                                 TaskMapped, TaskRetrying, TaskStarted)
    from .executors import ConcurrentExecutor, Executor, SequentialExecutor
    from .executors.dask import DaskExecutor as DaskExecutor
    from .measure import OverheadReport, measure_overhead
    from .running.result import RunResult, TaskRun
    from .running.strategies import ContextPreservationStrategy, IncrementalContextStrategy
    from .store import SqliteStore as SqliteStore
    from .store.postgres import PostgresStore as PostgresStore

#: Public names of the run side and of the optional parts -> the module defining each. They
#: load on first use, so ``import flowdsl`` imports what declaring and compiling a flow needs
#: and no more (no runtime, no sqlite3, no Dask); ``flow.run()`` loads the run side.
_LAZY = {
    **dict.fromkeys(["DELETED", "CurrentTask", "TaskContext", "TaskRecord", "current_task"],
                    ".running.context"),
    **dict.fromkeys(["ElementFinished", "RunFinished", "RunStarted", "TaskFinished",
                     "TaskMapped", "TaskRetrying", "TaskStarted"], ".running.events"),
    **dict.fromkeys(["ConcurrentExecutor", "Executor", "SequentialExecutor"], ".executors"),
    **dict.fromkeys(["OverheadReport", "measure_overhead"], ".measure"),
    **dict.fromkeys(["RunResult", "TaskRun"], ".running.result"),
    **dict.fromkeys(["ContextPreservationStrategy", "IncrementalContextStrategy"],
                    ".running.strategies"),
    "SqliteStore": ".store",
    "PostgresStore": ".store.postgres",  # needs the `postgres` extra (psycopg 3)
    "DaskExecutor": ".executors.dask",  # needs the `dask` extra
}


def __getattr__(name: str) -> object:
    """Load a public name of `_LAZY` on first use (then it is a plain attribute)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowdsl' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
