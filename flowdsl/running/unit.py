"""The unit of work: the attempts of one (task, element index).

Executors schedule units (when and where an attempt runs); the runtime does what happens to
a unit (bind, call under its policy, publish, record, settle). Today every task is one unit
with ``index`` None; a mapped task (``map_over``) will be one unit per element, each with
its own attempts, timeout and slots, settled into the task when its last element ends. A
cached unit is settled without calling its handler; a unit whose condition is false is
settled before it runs. All three enter here, not on the runtime's hot path.
"""

from __future__ import annotations

from ..compiling.plan import Step
from .result import TaskRun

__all__ = ["Unit"]


class Unit:
    """Attempts of ``step`` for element ``index`` (None: the whole, unmapped task); ``task`` is
    the `TaskRun` the unit's outcome settles."""

    __slots__ = ("step", "task", "index")

    def __init__(self, step: Step, task: TaskRun, index: int | None = None) -> None:
        self.step = step
        self.task = task
        self.index = index

    @property
    def id(self) -> str:
        """The task id."""
        return self.step.id

    def __repr__(self) -> str:
        where = "" if self.index is None else f"[{self.index}]"
        return f"Unit({self.step.id!r}{where}, status={self.task.status.value})"
