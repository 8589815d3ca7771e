"""Adaptive scheduling: expected durations from history and each task's critical path.

The expected duration of a task is the median of its last 10 recorded durations; a task
without history counts as the median of those with one; with no history at all every task
counts 0, so ready tasks start in plan order. A task's critical path is its own expected
duration plus the longest chain of expected durations below it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..compiling.plan import Plan

__all__ = ["expected_durations", "critical_paths", "explain"]


def expected_durations(plan: Plan, history: Mapping[str, list[float]]) -> dict[str, float]:
    from statistics import median  # (slow to import: only for adaptive scheduling)

    known = {step.id: median(history[step.id][-10:])
             for step in plan.steps if history.get(step.id)}
    fallback = median(known.values()) if known else 0.0
    return {step.id: known.get(step.id, fallback) for step in plan.steps}


def critical_paths(plan: Plan, expected: Mapping[str, float]) -> dict[str, float]:
    longest: dict[str, float] = {}
    for step in reversed(plan.steps):  # children come later in plan order
        below = max((longest[child] for child in plan.children[step.id]), default=0.0)
        longest[step.id] = expected[step.id] + below
    return longest


def explain(plan: Plan, history: Mapping[str, list[float]]) -> dict[str, Any]:
    """What the concurrent executor will use: per task its history, expected duration and
    critical path, and the critical path of the whole flow."""
    expected = expected_durations(plan, history)
    paths = critical_paths(plan, expected)
    chain: list[str] = []
    roots = [step.id for step in plan.steps if not step.dependencies]
    current = max(roots, key=lambda t: paths[t], default=None)
    while current is not None:
        chain.append(current)
        children = plan.children[current]
        current = max(children, key=lambda t: paths[t], default=None)
    return {
        "tasks": {
            step.id: {
                "priority": step.priority,
                "history": list(history.get(step.id, ())[-10:]),
                "expected": expected[step.id],
                "critical_path": paths[step.id],
            }
            for step in plan.steps
        },
        "critical_path": chain,
        "critical_path_length": paths[chain[0]] if chain else 0.0,
        "history_known": any(history.get(step.id) for step in plan.steps),
    }
