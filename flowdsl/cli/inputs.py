"""What a flow reads from its caller: required inputs, optional ones with their defaults,
and the check of the keys given on the command line against them."""

from __future__ import annotations

import inspect
from typing import Any, Iterable

from ..compiling.plan import Plan
from ..errors import did_you_mean

__all__ = ["optional_inputs", "read_keys", "unread_warnings"]

_LIVE_CONTEXT = ("context", "task_input")


def _parameters(handler: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        return {}


def optional_inputs(plan: Plan) -> dict[str, list[tuple[str, Any]]]:
    """Context keys a task reads with a default and no producer: key -> [(task, default)],
    in plan order. A caller may set them (``--set``); nobody has to."""
    found: dict[str, list[tuple[str, Any]]] = {}
    required = set(plan.inputs)
    for step in plan.steps:
        params = _parameters(step.handler)
        for key in step.inputs:
            if key in required or key in step.producers:
                continue
            param = params.get(key)
            if param is not None and param.default is not inspect.Parameter.empty:
                found.setdefault(key, []).append((step.id, param.default))
    return found


def _takes_live_context(step: Any) -> bool:
    for name, param in _parameters(step.handler).items():
        annotation = param.annotation
        if name in _LIVE_CONTEXT or getattr(annotation, "__name__", annotation) == "TaskContext":
            return True
    return False


def read_keys(plan: Plan) -> set[str]:
    """Every context key a task of ``plan`` declares as an input."""
    return {key for step in plan.steps for key in step.inputs}


def unread_warnings(plan: Plan, given: Iterable[str]) -> list[str]:
    """One warning per given key that no task reads (with "did you mean" for a close one)."""
    read = read_keys(plan)
    unread = [key for key in given if key not in read]
    if not unread:
        return []
    live = [step.id for step in plan.steps if _takes_live_context(step)]
    aside = (f" (unless {', '.join(map(repr, live[:3]))}{' …' if len(live) > 3 else ''} "
             "reads it through its context)") if live else ""
    return [f"warning: no task of flow {plan.flow!r} reads input {key!r}"
            + did_you_mean(key, sorted(read)) + aside + "; the run starts anyway"
            for key in unread]
