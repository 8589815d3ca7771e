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
from typing import Mapping

from ..compiling.plan import Plan
from ..declaring.hooks import Hook, Hooks
from ..declaring.spec import TaskSpec
from ..running.events import Event, TaskFinished, TaskRetrying
from ..status import TaskStatus

__all__ = ["Hooks", "HookObserver", "hook_observer"]


_KEYWORD = {TaskStatus.COMPLETED: "on_success", TaskStatus.FAILED: "on_failure"}


class HookObserver:
    """Calls the flow's hooks, then those of the included flows a task came from (outermost
    first), then the task's own, with the events that fire them."""

    def __init__(self, flow: Hooks, tasks: Mapping[str, tuple[Hooks, ...]]) -> None:
        self.flow = flow
        self.tasks = tasks  # task id -> its other hooks, in calling order

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
        self._call(self.flow, keyword, event, "the flow's")
        for hooks in self.tasks.get(event.task_id, ()):
            self._call(hooks, keyword, event, hooks.owner)

    @staticmethod
    def _call(hooks: Hooks, keyword: str, event: TaskFinished | TaskRetrying,
              owner: str) -> None:
        hook = getattr(hooks, keyword)
        if hook is None:
            return
        try:
            hook(event)
        except Exception as exc:  # a hook never changes the run
            warnings.warn(
                f"flowdsl: {keyword} hook {_name(hook)} ({owner}) raised for task "
                f"{event.task_id!r}: {type(exc).__name__}: {exc}", RuntimeWarning,
                stacklevel=3)


def _name(hook: Hook) -> str:
    return str(getattr(hook, "__qualname__", None) or getattr(hook, "__name__", None)
               or repr(hook))


def _own(spec: TaskSpec) -> Hooks | None:
    if spec.on_success is None and spec.on_failure is None and spec.on_retry is None:
        return None
    return Hooks(on_success=spec.on_success, on_failure=spec.on_failure,
                 on_retry=spec.on_retry, owner="the task's")


def task_hooks(plan: Plan, scopes: Mapping[tuple[str, ...], Hooks] | None = None
               ) -> Mapping[str, tuple[Hooks, ...]]:
    """Task id -> the hooks to call after the flow's, for the tasks of ``plan`` that have any:
    those of the included flows it was copied through (``scopes``: include path -> that
    flow's hooks, outermost first), then its own. Cached on the plan."""
    key = tuple((path, hooks.on_success, hooks.on_failure, hooks.on_retry)
                for path, hooks in scopes.items()) if scopes else ()  # (usual: no generator)
    cached = plan.derived.get("hooks")
    if cached is not None and cached[0] == key:
        table: Mapping[str, tuple[Hooks, ...]] = cached[1]
        return table
    found: dict[str, tuple[Hooks, ...]] = {}
    for step in plan.steps:
        spec = step.spec
        chain: list[Hooks] = []
        if scopes and spec.included:
            path = spec.included[:-1] if spec.gathers else spec.included  # a gatherer is the
            for depth in range(1, len(path) + 1):                         # including flow's
                hooks = scopes.get(path[:depth])
                if hooks:
                    chain.append(hooks)
        own = _own(spec)
        if own is not None:
            chain.append(own)
        if chain:
            found[step.id] = tuple(chain)
    plan.derived["hooks"] = (key, found)
    return found


def hook_observer(plan: Plan, flow: Hooks,
                  scopes: Mapping[tuple[str, ...], Hooks] | None = None) -> HookObserver | None:
    """The observer running the hooks of ``plan``'s tasks, of the flow and of the flows it
    includes (``scopes``); None without any (so a run without hooks builds no event)."""
    tasks = task_hooks(plan, scopes)
    if not tasks and not flow:
        return None
    return HookObserver(flow, tasks)
