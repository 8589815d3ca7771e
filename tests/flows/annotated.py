"""Handlers whose annotations are strings (``from __future__ import annotations``):
``TaskContext`` arrives as the string ``"TaskContext"`` and must still bind the context."""

from __future__ import annotations

from flowdsl import Flow, TaskContext

ORDER = ("seed", "inspect")
INPUTS = ()


def build(seen: dict[str, object] | None = None) -> Flow:
    """``seen["ctx"]`` receives what ``inspect``'s ``ctx: TaskContext`` parameter was given."""
    flow = Flow("annotated")
    seen = seen if seen is not None else {}

    @flow.task
    def seed() -> int:
        return 7

    @flow.task
    def inspect(seed: int, ctx: TaskContext) -> int:
        seen["ctx"] = ctx
        return seed * 2

    return flow
