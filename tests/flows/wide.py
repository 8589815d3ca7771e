"""A fan-out / fan-in: root -> w00 .. w{N-1} (equal priority) -> sink."""

from __future__ import annotations

from flowdsl import Flow


def ids(width: int = 10) -> tuple[str, ...]:
    return tuple(f"w{i:02d}" for i in range(width))


def order(width: int = 10) -> tuple[str, ...]:
    return ("root", *ids(width), "sink")


def build(width: int = 10) -> Flow:
    flow = Flow("wide")

    @flow.task
    def root():
        return 1

    def make(i: int):
        def work(root):
            return root + i

        return work

    for task_id in ids(width):
        flow.task(id=task_id)(make(int(task_id[1:])))

    @flow.task(depends_on=list(ids(width)))
    def sink(context):
        return sum(context.get_result(task_id) for task_id in ids(width))

    return flow
