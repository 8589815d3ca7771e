"""A diamond: start -> (left, right) -> join. ``right`` is HIGH, so it runs before ``left``;
``left`` produces the context key ``total`` that ``join`` reads (depends_on=["left"])."""

from __future__ import annotations

from flowdsl import Flow, Priority

ORDER = ("start", "right", "left", "join")
INPUTS = ()
RESULTS = {
    "start": 2,
    "left": {"total": 20},
    "right": 200,
    "join": 220,
}


def build() -> Flow:
    flow = Flow("diamond")

    @flow.task
    def start():
        return 2

    @flow.task(produces=["total"])
    def left(start):
        return {"total": start * 10}

    @flow.task(priority=Priority.HIGH)
    def right(start):
        return start * 100

    @flow.task(depends_on=["left"])
    def join(right, total):
        return right + total

    return flow
