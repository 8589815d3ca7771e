"""Context preservation strategies: the seed program's hook points, kept public.

The runtime itself keeps each task's record (its declared inputs, its delta, the values its
writes replaced), bounded by the strategy's ``max_context_items``; that is the incremental
preservation. A strategy's hooks let a user add their own: ``preserve_context`` runs just
before a task's first attempt, ``restore_context`` just after its last attempt ends
(completed or failed); neither runs for SKIPPED or CANCELLED tasks; return values are ignored.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the hooks' arguments
    from .context import TaskContext
    from .result import TaskRun

#: A bound hook: ``hook(context, task)``.
Hook = Callable[["TaskContext", "TaskRun"], object]

__all__ = ["ContextPreservationStrategy", "IncrementalContextStrategy", "DEFAULT_MAX_RECORDS"]

#: The bound on records for a strategy that declares no ``max_context_items``.
DEFAULT_MAX_RECORDS = 1000


class ContextPreservationStrategy(abc.ABC):
    """Hooks called around each task that runs; subclass to preserve context your way."""

    @abc.abstractmethod
    def preserve_context(self, context: TaskContext, task: TaskRun) -> Any:
        """Called just before ``task``'s first attempt starts."""

    @abc.abstractmethod
    def restore_context(self, context: TaskContext, task: TaskRun) -> Any:
        """Called just after ``task``'s last attempt ends (completed or failed)."""


class IncrementalContextStrategy(ContextPreservationStrategy):
    """The default: keep per-task deltas, at most ``max_context_items`` records.

    Records are scored by importance (0..6: priority, declared keys, fan-in, writes) and the
    least important, oldest first, are pruned past the bound; results, the shared state,
    ``previous_results`` and the trace are never pruned. Its hooks add nothing to what the
    runtime records, so the runtime does not call them; override them in a subclass to add
    behaviour (then they are called).
    """

    def __init__(self, max_context_items: int = DEFAULT_MAX_RECORDS) -> None:
        if isinstance(max_context_items, bool) or not isinstance(max_context_items, int) \
                or max_context_items < 0:
            raise ValueError(f"max_context_items must be an int >= 0, got {max_context_items!r}")
        self.max_context_items = max_context_items

    def preserve_context(self, context: TaskContext, task: TaskRun) -> None:
        """Nothing to copy: the runtime journals the task's writes as they happen."""

    def restore_context(self, context: TaskContext, task: TaskRun) -> None:
        """Nothing to restore: the task's delta is already in its record."""

    def __repr__(self) -> str:
        return f"IncrementalContextStrategy(max_context_items={self.max_context_items})"


def active_hooks(strategy: ContextPreservationStrategy) -> tuple[Hook | None, Hook | None]:
    """The strategy's bound hooks, or None for each one that is the default's no-op."""
    kind = type(strategy)
    if kind is IncrementalContextStrategy:
        return None, None
    preserve = None if kind.preserve_context is IncrementalContextStrategy.preserve_context \
        else strategy.preserve_context
    restore = None if kind.restore_context is IncrementalContextStrategy.restore_context \
        else strategy.restore_context
    return preserve, restore
