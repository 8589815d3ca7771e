"""The 1,000-task chain with an initial context of 10 and of 100,000 keys: the cost per
task must not grow with the size of the context (DESIGN.md: ``context.data`` is a
read-only view of the caller's mapping, preservation is incremental)."""

from functools import lru_cache

import pytest

from shapes import PAYLOAD, chain, check_run, self_reported

TASKS = 1000
SIZES = [10, 100_000]


@lru_cache(maxsize=None)
def shape_for(keys: int):
    initial = {"payload": PAYLOAD}
    initial.update((f"key{j}", j) for j in range(keys - 1))
    return chain(TASKS, initial=initial)


def case_name(keys: int) -> str:
    return f"context-{keys}-keys"


@pytest.mark.parametrize("keys", SIZES)
def test_plain_loop(benchmark, record, keys):
    shape = shape_for(keys)
    benchmark.group = case_name(keys)
    results = benchmark(shape.plain_loop())
    assert results[f"t{TASKS - 1}"] == PAYLOAD
    record(case_name(keys), "plain loop", TASKS, context_keys=keys)


@pytest.mark.parametrize("keys", SIZES)
def test_flowdsl(benchmark, record, keys):
    shape = shape_for(keys)
    assert len(shape.initial) == keys
    flow = shape.build_flow()
    check_run(flow.run(shape.initial), shape)
    benchmark.group = case_name(keys)
    benchmark(lambda: flow.run(shape.initial))
    record(case_name(keys), "flowdsl", TASKS, baseline=shape.plain_loop(), context_keys=keys,
           **self_reported(flow, shape.initial))
