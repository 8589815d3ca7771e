"""Priorities and the statuses of tasks and runs."""

from __future__ import annotations

import enum

__all__ = ["Priority", "TaskPriority", "TaskStatus", "RunStatus"]


class Priority(enum.IntEnum):
    """Lower runs first; a priority of 1 or lower makes a task critical. Any int is accepted too."""

    CRITICAL = 1
    HIGH = 2
    NORMAL = 3
    LOW = 4


#: Alias for code written against the seed program.
TaskPriority = Priority


class TaskStatus(enum.Enum):
    """Where one task of one run stands."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RunStatus(enum.Enum):
    """Where a whole run stands (RUNNING is seen only in a run store while a run is in progress)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
