"""A chain: extract -> transform -> load, bound by parameter names; one input, ``source``."""

from __future__ import annotations

from flowdsl import Flow

ORDER = ("extract", "transform", "load")
INPUTS = ("source",)
INITIAL = {"source": "customers.csv"}
RESULTS = {
    "extract": ["customers.csv:0", "customers.csv:1", "customers.csv:2"],
    "transform": ["CUSTOMERS.CSV:0", "CUSTOMERS.CSV:1", "CUSTOMERS.CSV:2"],
    "load": 3,
}


def build() -> Flow:
    flow = Flow("linear")

    @flow.task
    def extract(source):
        return [f"{source}:{i}" for i in range(3)]

    @flow.task
    def transform(extract):
        return [row.upper() for row in extract]

    @flow.task
    def load(transform):
        return len(transform)

    return flow
