"""What conditions and trigger rules cost: the 1,000-task no-op chain as is, with a true
``run_if`` predicate on every task (each evaluated once, when its task is ready), and with
``trigger="all_done"`` on every task, sequential and at ``max_concurrency=4``.

The plain chain is the baseline flowdsl has to keep (a flow without conditions pays nothing
for them: one flag per task); the others show the gate's cost per task.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

from shapes import chain

N = 1000
VARIANTS = ("plain", "run_if", "all_done")
EXECUTORS = ("sequential", "concurrent")


@lru_cache(maxsize=None)
def shape() -> Any:
    return chain(N)


def build(variant: str) -> Any:
    from flowdsl import Flow

    flow = Flow(f"conditions-{variant}")
    for task in shape().tasks:
        options: dict[str, Any] = {}
        if variant == "run_if":
            options["run_if"] = lambda: True
        elif variant == "all_done":
            options["trigger"] = "all_done"
        flow.task(id=task.id, **options)(task.fn)
    return flow


def test_plain_loop(benchmark, record) -> None:
    benchmark.group = "conditions-1000"
    results = benchmark(shape().plain_loop())
    assert results[f"t{N - 1}"] == shape().expected_last
    record("conditions-1000", "plain loop", N)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_flowdsl(benchmark, record, variant: str, executor: str) -> None:
    from flowdsl import ConcurrentExecutor, SequentialExecutor

    flow = build(variant)
    runner = SequentialExecutor() if executor == "sequential" else ConcurrentExecutor(4)
    first = flow.run(shape().initial, executor=runner)  # compiles (cached), untimed
    assert first.results[f"t{N - 1}"] == shape().expected_last
    benchmark.group = "conditions-1000"
    benchmark(lambda: flow.run(shape().initial, executor=runner))
    record("conditions-1000", f"flowdsl {variant} {executor}", N,
           baseline=shape().plain_loop())
