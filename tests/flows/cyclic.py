"""A cycle a -> b -> c -> a behind a healthy root: compiling (or running) raises CycleError."""

from __future__ import annotations

from flowdsl import Flow

CYCLE = frozenset({"a", "b", "c"})


def build(ran: list[str] | None = None) -> Flow:
    """``ran`` (optional) collects the id of every task that runs: it must stay empty."""
    flow = Flow("cyclic")
    ran = ran if ran is not None else []

    @flow.task
    def root():
        ran.append("root")

    @flow.task(depends_on=["c"])
    def a(root):
        ran.append("a")

    @flow.task
    def b(a):
        ran.append("b")

    @flow.task
    def c(b):
        ran.append("c")

    return flow
