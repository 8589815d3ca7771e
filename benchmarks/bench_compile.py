"""Compiling 10,000 tasks / ~50,000 edges (each task takes the results of up to 5
random earlier tasks as parameters).

* registration: decorating the 10,000 handlers with ``@flow.task`` on a new Flow
  (reported beside compile, no target);
* cold compile: ``flow.compile()`` on a new Flow whose tasks are registered (target:
  under 100 ms);
* cached compile: a second ``flow.compile()`` (the plan is cached until the flow changes);
* graphlib static order of the same graph, as a reference point.
"""

import gc
import graphlib
from functools import lru_cache

from shapes import dense

CASE = "compile-10000"
TASKS = 10_000


@lru_cache(maxsize=None)
def shape():
    return dense(TASKS, max_deps=5)


def new_registered_flow():
    return shape().build_flow("compile-bench")


def test_graphlib_static_order(benchmark, record):
    graph = shape().graph()
    benchmark.group = CASE
    order = benchmark(lambda: tuple(graphlib.TopologicalSorter(graph).static_order()))
    assert len(order) == TASKS
    record(CASE, "graphlib static_order", TASKS, edges=shape().edges)


def test_register(benchmark, record):
    s = shape()
    from flowdsl import Flow

    benchmark.group = CASE
    flow = benchmark.pedantic(lambda: s.register(Flow("register-bench")), rounds=5, warmup_rounds=1)
    assert len(flow.compile().order) == TASKS
    record(CASE, "flowdsl register (decorate)", TASKS, edges=s.edges)


def test_cold_compile(benchmark, record):
    s = shape()
    benchmark.group = CASE
    def setup():
        flow = new_registered_flow()
        gc.collect()  # the previous rounds' flows are garbage: not the cost of this compile
        return (flow,), {}

    plan = benchmark.pedantic(lambda flow: flow.compile(), setup=setup, rounds=7)
    position = {tid: i for i, tid in enumerate(plan.order)}
    assert len(position) == TASKS
    for tid, deps in s.graph().items():
        assert all(position[d] < position[tid] for d in deps), f"{tid} ordered before a dependency"
    record(CASE, "flowdsl cold compile", TASKS, edges=s.edges)


def test_cached_compile(benchmark, record):
    flow = new_registered_flow()
    first = flow.compile()
    benchmark.group = CASE
    again = benchmark(flow.compile)
    assert again is first, "the plan should be cached until the flow changes"
    record(CASE, "flowdsl cached compile", TASKS, edges=shape().edges)
