"""Whether a ready task runs, by its trigger rule: what its upstream tasks' statuses allow.

A task is *ready* once every dependency has ended. Tasks that ended without completing are
kept in `Gate.blocked` with their *origin*: the task itself when it failed, was cancelled or
was skipped by a false condition; the origin of the upstream that skipped it otherwise. The
rules (DESIGN, "Conditions and trigger rules"):

- a CANCELLED dependency cancels the task, whatever its trigger;
- ``all_succeeded`` (default): every dependency COMPLETED, else SKIPPED naming the upstream;
- ``none_failed``: no ancestor FAILED (a skip is followed back to its origin), else SKIPPED
  naming the failed task;
- ``all_done``: runs whatever its dependencies' statuses.

The ``run_if`` predicate is the runtime's business (it calls user code); the gate only reads
statuses, so the default path (no failure yet, no predicate) never consults it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ..compiling.plan import Step
from ..status import TaskStatus
from .context import TaskContext
from .result import TaskRun

__all__ = ["Gate", "Verdict", "CONDITION_FALSE", "condition_holds"]

FAILED, SKIPPED, CANCELLED = TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED
#: The reason of a task whose ``run_if`` predicate returned a false value.
CONDITION_FALSE = "condition false"

#: ``(status, origin, reason)``: how a task that may not run is settled.
Verdict = tuple[TaskStatus, str, str]


class Gate:
    """The trigger rules over one run's task statuses."""

    __slots__ = ("tasks", "index", "blocked", "_above")

    def __init__(self, tasks: Mapping[str, TaskRun], index: Mapping[str, Step]) -> None:
        self.tasks = tasks
        self.index = index
        #: task that ended without completing -> its origin (see the module's docstring)
        self.blocked: dict[str, str] = {}
        #: task id -> a FAILED ancestor (or None), for ``none_failed``; filled on demand
        self._above: dict[str, str | None] = {}

    def verdict(self, step: Step) -> Verdict | None:
        """How ``step`` is settled without running, or None when its trigger lets it run
        (every dependency of ``step`` has ended)."""
        blocked, tasks = self.blocked, self.tasks
        unmet = [dep for dep in step.dependencies if dep in blocked]
        for dep in unmet:
            if tasks[dep].status is CANCELLED:
                return CANCELLED, blocked[dep], f"upstream task {dep!r} was cancelled"
        trigger = step.trigger
        if trigger == "none_failed":  # any ancestor, also behind a task that ran anyway
            failed = self.failed_ancestor(step)
            if failed is None:
                return None
            return SKIPPED, failed, f"upstream task {failed!r} failed"
        if not unmet or trigger == "all_done":
            return None
        skipped_by = self.skipped_by(step)  # all_succeeded
        assert skipped_by is not None  # an unmet dependency that was not cancelled
        return SKIPPED, blocked[skipped_by], self.upstream_reason(skipped_by)

    def skipped_by(self, step: Step) -> str | None:
        """The upstream of ``step`` that skips it under ``all_succeeded``: the first whose
        origin FAILED, else the first skipped one (a cancelled one never: it cancels)."""
        blocked, tasks = self.blocked, self.tasks
        first = None
        for dep in step.dependencies:
            origin = blocked.get(dep)
            if origin is None or tasks[dep].status is CANCELLED:
                continue
            if tasks[origin].status is FAILED:
                return dep
            if first is None:
                first = dep
        return first

    def upstream_reason(self, dep: str) -> str:
        """Why a task is SKIPPED when its dependency ``dep`` did not complete."""
        origin = self.blocked[dep]
        if self.tasks[origin].status is FAILED:
            return f"upstream task {origin!r} failed"
        if origin == dep:
            return f"upstream task {dep!r} was skipped: {CONDITION_FALSE}"
        return f"upstream task {dep!r} was skipped: {CONDITION_FALSE} on {origin!r}"

    def failed_ancestor(self, step: Step) -> str | None:
        """A FAILED ancestor of ``step`` (the first found, dependencies in order), or None.
        Every ancestor has ended, so the answer per task is final and kept: O(edges) over
        the run, and only for ``none_failed`` tasks."""
        tasks, above, index = self.tasks, self._above, self.index
        stack = [dep for dep in step.dependencies if dep not in above]
        while stack:
            task = stack[-1]
            if task in above:
                stack.pop()
                continue
            deps = index[task].dependencies
            todo = [dep for dep in deps if dep not in above]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            above[task] = _first_failed(deps, tasks, above)
        return _first_failed(step.dependencies, tasks, above)


def _first_failed(deps: tuple[str, ...], tasks: Mapping[str, TaskRun],
                  above: Mapping[str, str | None]) -> str | None:
    for dep in deps:
        if tasks[dep].status is FAILED:
            return dep
        failed = above[dep]
        if failed is not None:
            return failed
    return None


def condition_holds(step: Step, context: TaskContext) -> bool:
    """Evaluate ``step``'s ``run_if`` predicate once, its parameters bound like a handler's;
    whatever it raises is the task's error. Predicates are plain functions: one that returns
    an awaitable is a `TypeError` (they run on the driver, before any attempt is submitted)."""
    assert step.run_if is not None and step.condition is not None
    args, kwargs, _ = step.condition(context)
    verdict = step.run_if(*args, **kwargs)
    if inspect.isawaitable(verdict):
        close = getattr(verdict, "close", None)
        if close is not None:
            close()  # never awaited: no "coroutine was never awaited" warning
        raise TypeError(f"task {step.id!r}: its run_if predicate returned an awaitable; "
                        "a predicate must be a plain (sync) function")
    return bool(verdict)
