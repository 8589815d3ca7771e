"""Executors decide when and where each unit of a `Run` runs; the `Run` does the rest.

``DaskExecutor`` (``flowdsl.executors.dask``) loads only when used (the ``dask`` extra)."""

from .base import Executor
from .concurrent import ConcurrentExecutor
from .sequential import SequentialExecutor

__all__ = ["Executor", "SequentialExecutor", "ConcurrentExecutor"]
