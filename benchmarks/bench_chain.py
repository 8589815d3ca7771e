"""Chains of no-op tasks passing a small dict along: 20, 1,000 and 10,000 tasks, sync
and async handlers, and a 1,000-task chain where each task ``produces`` a key that the
next one reads. Defaults on (context preservation, trace, summary).

Each case is a benchmark group: the plain loop (same handlers, a dict of results), the
``graphlib.TopologicalSorter`` loop, then flowdsl; the overhead per task is
(flowdsl median - plain loop median) / tasks.
"""

import gc
from functools import lru_cache

import pytest

from shapes import chain, check_run, gc_activity, self_reported

# (mode, tasks); mode: "sync", "async" or "produces" (sync, produces=[f"k{i}"])
CASES = [("sync", 20), ("sync", 1000), ("sync", 10000),
         ("async", 20), ("async", 1000), ("async", 10000),
         ("produces", 1000)]
IDS = [f"{mode}-{n}" for mode, n in CASES]
BIG = 10000  # from this size on: benchmark.pedantic with a fixed number of rounds
ROUNDS = 10


@lru_cache(maxsize=None)
def shape_for(mode: str, n: int):
    return chain(n, async_=mode == "async", produces=mode == "produces")


def case_name(mode: str, n: int) -> str:
    return {"sync": "", "async": "async-", "produces": "produces-"}[mode] + f"chain-{n}"


def run_benchmark(benchmark, fn, n):
    if n >= BIG:
        return benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    return benchmark(fn)


@pytest.mark.parametrize("mode,n", CASES, ids=IDS)
def test_plain_loop(benchmark, record, mode, n):
    shape = shape_for(mode, n)
    benchmark.group = case_name(mode, n)
    results = run_benchmark(benchmark, shape.plain_loop(), n)
    assert results[f"t{n - 1}"] == shape.expected_last
    record(case_name(mode, n), "plain loop", n)


@pytest.mark.parametrize("mode,n", [c for c in CASES if c[0] != "async"],
                         ids=[i for c, i in zip(CASES, IDS) if c[0] != "async"])
def test_graphlib(benchmark, record, mode, n):
    shape = shape_for(mode, n)
    benchmark.group = case_name(mode, n)
    results = run_benchmark(benchmark, shape.graphlib_loop(), n)
    assert results[f"t{n - 1}"] == shape.expected_last
    record(case_name(mode, n), "graphlib", n)


@pytest.mark.parametrize("mode,n", CASES, ids=IDS)
def test_flowdsl(benchmark, record, mode, n):
    shape = shape_for(mode, n)
    flow = shape.build_flow()
    check_run(flow.run(shape.initial), shape)      # compiles (cached) and checks, untimed
    benchmark.group = case_name(mode, n)
    run_benchmark(benchmark, lambda: flow.run(shape.initial), n)
    record(case_name(mode, n), "flowdsl", n, baseline=shape.plain_loop(),
           **self_reported(flow, shape.initial), **gc_activity(flow, shape.initial))


@pytest.mark.parametrize("n", [1000, 10000], ids=["sync-1000", "sync-10000"])
def test_flowdsl_gc_disabled(benchmark, record, n):
    """Diagnostic: the same runs with the garbage collector off while a run lasts, to
    show how much of the cost per task is Python's cyclic GC walking what the run
    keeps (records, trace and previous_results entries), which grows with the flow."""
    shape = shape_for("sync", n)
    flow = shape.build_flow()
    check_run(flow.run(shape.initial), shape)

    def run_without_gc():
        gc.disable()
        try:
            return flow.run(shape.initial)
        finally:
            gc.enable()

    benchmark.group = case_name("sync", n)
    run_benchmark(benchmark, run_without_gc, n)
    record(case_name("sync", n), "flowdsl (gc disabled)", n, baseline=shape.plain_loop())
