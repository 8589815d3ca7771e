"""Executors decide which task of a `Run` starts when; the `Run` does the rest."""

from .base import Executor
from .concurrent import ConcurrentExecutor
from .sequential import SequentialExecutor

__all__ = ["Executor", "SequentialExecutor", "ConcurrentExecutor"]
