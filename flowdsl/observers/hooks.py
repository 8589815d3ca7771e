"""Hooks: ``on_success``, ``on_failure`` and ``on_retry``, per task and per flow.

    flow = Flow("etl", on_failure=page_someone)

    @flow.task(retries=2, on_retry=lambda event: print("retrying in", event.wait))
    def extract(): ...

Hooks are observers of the runtime's events: each is called with the typed event once the
task's state change is final (and journalled), on the driver (also with Dask). ``on_success``
gets a COMPLETED `TaskFinished` (also for a task taken from the cache; never for one restored
on resume, which emits none), ``on_failure`` a FAILED one, ``on_retry`` a `TaskRetrying`;
SKIPPED and CANCELLED tasks fire no hook. The flow's hook runs first, then the task's. A hook
that raises gives a `RuntimeWarning` naming the hook and the task, and never changes the run.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import attrs

from ..compiling.plan import Plan
from ..running.events import Event, TaskFinished, TaskRetrying
from ..status import TaskStatus

__all__ = ["Hooks", "HookObserver", "hook_observer"]

Hook = Callable[[Any], Any]


@attrs.frozen(kw_only=True)
class Hooks:
    """The hooks of one task or of one flow (None: no hook)."""

    on_success: Hook | None = attrs.field(default=None, eq=False)
    on_failure: Hook | None = attrs.field(default=None, eq=False)
    on_retry: Hook | None = attrs.field(default=None, eq=False)

    def __bool__(self) -> bool:
        return (self.on_success is not None or self.on_failure is not None
                or self.on_retry is not None)


_KEYWORD = {TaskStatus.COMPLETED: "on_success", TaskStatus.FAILED: "on_failure"}


class HookObserver:
    """Calls the flow's hooks, then the task's, with the events that fire them."""

    def __init__(self, flow: Hooks, tasks: Mapping[str, Hooks]) -> None:
        self.flow = flow
        self.tasks = tasks

    def on_event(self, event: Event) -> None:
        if isinstance(event, TaskFinished):
            if getattr(event, "index", None) is not None:  # one element of a mapped task
                return
            keyword = _KEYWORD.get(event.status)
            if keyword is None:  # SKIPPED, CANCELLED
                return
        elif isinstance(event, TaskRetrying):
            keyword = "on_retry"
        else:
            return
        task = self.tasks.get(event.task_id)
        for owner, hooks in (("the flow's", self.flow), ("the task's", task)):
            hook = getattr(hooks, keyword) if hooks is not None else None
            if hook is None:
                continue
            try:
                hook(event)
            except Exception as exc:  # a hook never changes the run
                warnings.warn(
                    f"flowdsl: {keyword} hook {_name(hook)} ({owner}) raised for task "
                    f"{event.task_id!r}: {type(exc).__name__}: {exc}", RuntimeWarning,
                    stacklevel=2)


def _name(hook: Hook) -> str:
    return str(getattr(hook, "__qualname__", None) or getattr(hook, "__name__", None)
               or repr(hook))


def task_hooks(plan: Plan) -> Mapping[str, Hooks]:
    """Task id -> its hooks, for the tasks of ``plan`` that have any (computed once per plan)."""
    table: Mapping[str, Hooks] | None = plan.derived.get("hooks")
    if table is None:
        found = {}
        for step in plan.steps:
            spec = step.spec
            if spec.on_success is None and spec.on_failure is None and spec.on_retry is None:
                continue
            found[step.id] = Hooks(on_success=spec.on_success, on_failure=spec.on_failure,
                                   on_retry=spec.on_retry)
        table = plan.derived["hooks"] = found
    return table


def hook_observer(plan: Plan, flow: Hooks) -> HookObserver | None:
    """The observer running the hooks of ``plan``'s tasks and the flow's; None without any
    (so a run without hooks builds no event for them)."""
    tasks = task_hooks(plan)
    if not tasks and not flow:
        return None
    return HookObserver(flow, tasks)
