"""Running part of a flow: the plan of some target tasks and their ancestors.

Derived from the full plan by selection (the full plan is valid, so is any ancestor-closed
part of it): steps keep their binders and producers; positions are renumbered.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import DefinitionError, UnknownDependencyError
from .plan import Plan

__all__ = ["target_plan", "normalize_targets"]


def normalize_targets(plan: Plan, targets: Iterable[str]) -> tuple[str, ...]:
    """The target ids, checked and in plan order (duplicates dropped)."""
    if isinstance(targets, str):
        targets = (targets,)
    wanted = tuple(dict.fromkeys(targets))
    if not wanted:
        raise DefinitionError(f"flow {plan.flow!r}: targets= names no task: give at least one id")
    for target in wanted:
        if not isinstance(target, str):
            raise DefinitionError(f"flow {plan.flow!r}: targets= takes task ids (str), "
                                  f"got {target!r}")
        if target not in plan.index:
            raise UnknownDependencyError("", target, plan.order,
                                         where=f"flow {plan.flow!r}: targets= names")
    position = {task: step.position for task, step in plan.index.items()}
    return tuple(sorted(wanted, key=position.__getitem__))


def target_plan(plan: Plan, targets: tuple[str, ...]) -> Plan:
    """The plan of ``targets`` (checked, see `normalize_targets`) and their ancestors."""
    keep: set[str] = set()
    stack = list(targets)
    while stack:
        task = stack.pop()
        if task in keep:
            continue
        keep.add(task)
        stack.extend(plan.index[task].dependencies)
    steps = [step._replace(position=i)
             for i, step in enumerate(s for s in plan.steps if s.id in keep)]
    readers = {key: tuple(r for r in tasks if r in keep)
               for key, tasks in plan.input_readers.items()}
    readers = {key: tasks for key, tasks in readers.items() if tasks}
    return Plan(
        flow=plan.flow,
        steps=steps,
        order=tuple(step.id for step in steps),
        inputs=tuple(key for key in plan.inputs if key in readers),
        input_readers=readers,
        index={step.id: step for step in steps},
        pools=plan.pools,
        is_async=any(step.is_async for step in steps),
        conditional=any(step.run_if is not None for step in steps),
        targets=targets,
        types=plan.types,
    )
