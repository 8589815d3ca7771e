"""Two non-chain shapes: wide (one root, 1,000 independent tasks, one sink taking all
their results as parameters) and a lattice (34 layers of 30 tasks, each depending on 3
tasks of the layer above: 1,020 tasks, 2,970 edges)."""

from functools import lru_cache

import pytest

from shapes import check_run, lattice, self_reported, wide

BUILDERS = {"wide-1000": lambda: wide(1000), "lattice-34x30": lambda: lattice(34, width=30, fan_in=3)}
CASES = list(BUILDERS)


@lru_cache(maxsize=None)
def shape_for(case: str):
    return BUILDERS[case]()


@pytest.mark.parametrize("case", CASES)
def test_plain_loop(benchmark, record, case):
    shape = shape_for(case)
    benchmark.group = case
    results = benchmark(shape.plain_loop())
    assert results[shape.tasks[-1].id] == shape.expected_last
    record(case, "plain loop", len(shape))


@pytest.mark.parametrize("case", CASES)
def test_graphlib(benchmark, record, case):
    shape = shape_for(case)
    benchmark.group = case
    results = benchmark(shape.graphlib_loop())
    assert results[shape.tasks[-1].id] == shape.expected_last
    record(case, "graphlib", len(shape))


@pytest.mark.parametrize("case", CASES)
def test_flowdsl(benchmark, record, case):
    shape = shape_for(case)
    flow = shape.build_flow()
    check_run(flow.run(shape.initial), shape)
    benchmark.group = case
    benchmark(lambda: flow.run(shape.initial))
    record(case, "flowdsl", len(shape), baseline=shape.plain_loop(), edges=shape.edges,
           **self_reported(flow, shape.initial))
