"""Compiling 10,000 tasks / ~50,000 edges (each task takes the results of up to 5
random earlier tasks as parameters).

* registration: decorating the 10,000 handlers with ``@flow.task`` on a new Flow
  (reported beside compile, no target);
* cold compile: ``flow.compile()`` on a new Flow whose tasks are registered (target,
  issue 16: under 60 ms of CPU time, ``time.process_time``; reported with its ratio to
  graphlib's ``static_order`` of the same graph, measured the same way in the same test:
  the machine is noisy, the ratio is what compares across runs);
* cold compile of the same graph with the priorities shuffled (no target): the general
  path, where declaration order is not already the order and graphlib sorts;
* cached compile: a second ``flow.compile()`` (the plan is cached until the flow changes);
* graphlib static order of the same graph, as a reference point;
* instructions per task, counted with valgrind's callgrind (deterministic on a shared
  machine): a cold compile of the dense shape and of the ``produces`` chain at 2,000 tasks,
  each beside graphlib's ``static_order`` of the same graph; one compile = (3 compiles -
  1 compile) / 2 in a fresh interpreter (``PYTHONHASHSEED=0``), which cancels start-up,
  imports and building the flows (frozen out of the garbage collector's generations, so
  what a compile's own collection costs does not depend on what ran before it). Skipped
  without valgrind. Alone (a few minutes): ``python benchmarks/bench_compile.py [SOURCE_ROOT]``
  (another root measures a baseline).
"""

import gc
import graphlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import pytest
from shapes import dense

HERE = Path(__file__).resolve().parent

CASE = "compile-10000"
TASKS = 10_000


@lru_cache(maxsize=None)
def shape():
    return dense(TASKS, max_deps=5)


def new_registered_flow():
    return shape().build_flow("compile-bench")


def new_shuffled_priority_flow():
    """The same graph, each task given a random priority (fixed seed): priorities that
    decrease along the declaration make the compiler sort with graphlib and its heap."""
    from flowdsl import Flow

    rng = random.Random(5)
    flow = Flow("compile-bench-priorities")
    for t in shape().tasks:
        flow.task(id=t.id, priority=rng.randint(1, 4))(t.fn)
    return flow


def cpu_ms(fn, setup=None, rounds: int = 7) -> float:
    """Median CPU time (``time.process_time``) of ``fn(setup())`` in ms, each round from a
    collected heap."""
    samples = []
    for _ in range(rounds):
        arg = setup() if setup else None
        gc.collect()
        start = time.process_time()
        fn(arg)
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1e3


def graphlib_cpu_ms() -> float:
    graph = shape().graph()
    return cpu_ms(lambda _: tuple(graphlib.TopologicalSorter(graph).static_order()))


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
    reference, cpu = graphlib_cpu_ms(), cpu_ms(lambda flow: flow.compile(), new_registered_flow)
    print(f"\ncold compile of {TASKS:,} tasks / {s.edges:,} edges: {cpu:.1f} ms CPU "
          f"(target 60), graphlib static_order {reference:.1f} ms CPU: {cpu / reference:.2f}x")
    record(CASE, "flowdsl cold compile", TASKS, edges=s.edges, cpu_ms=round(cpu, 2),
           graphlib_cpu_ms=round(reference, 2), ratio_to_graphlib=round(cpu / reference, 2))


def test_cold_compile_general_order(benchmark, record):
    """The graphlib path: priorities that decrease along the declaration."""
    benchmark.group = CASE
    def setup():
        flow = new_shuffled_priority_flow()
        gc.collect()
        return (flow,), {}

    plan = benchmark.pedantic(lambda flow: flow.compile(), setup=setup, rounds=5)
    assert len(plan.order) == TASKS
    reference = graphlib_cpu_ms()
    cpu = cpu_ms(lambda flow: flow.compile(), new_shuffled_priority_flow, rounds=5)
    print(f"\ncold compile, shuffled priorities (graphlib path): {cpu:.1f} ms CPU, graphlib "
          f"static_order {reference:.1f} ms CPU: {cpu / reference:.2f}x")
    record(CASE, "flowdsl cold compile, shuffled priorities", TASKS, edges=shape().edges,
           cpu_ms=round(cpu, 2), graphlib_cpu_ms=round(reference, 2),
           ratio_to_graphlib=round(cpu / reference, 2))


def test_cached_compile(benchmark, record):
    flow = new_registered_flow()
    first = flow.compile()
    benchmark.group = CASE
    again = benchmark(flow.compile)
    assert again is first, "the plan should be cached until the flow changes"
    record(CASE, "flowdsl cached compile", TASKS, edges=shape().edges)


# -- instructions per task (callgrind) ------------------------------------------------------
COUNTED = 2_000
CALLGRIND_SCRIPT = """
import gc, graphlib, sys
sys.path[:0] = [{root!r}, {bench!r}]
import shapes
shape = shapes.dense({n}, max_deps=5) if {shape!r} == "dense" else shapes.chain({n}, produces=True)
if {reference}:
    graph = shape.graph()
    for _ in range({k}):
        tuple(graphlib.TopologicalSorter(graph).static_order())
else:
    flows = [shape.build_flow("counted") for _ in range(3)]
    gc.collect()
    gc.freeze()  # each compile's collection then scans its own objects, not the flows
    for flow in flows[:{k}]:
        flow.compile()
"""


def _callgrind_total(root: Path, shape: str, reference: bool, k: int) -> int:
    code = CALLGRIND_SCRIPT.format(root=str(root), bench=str(HERE), n=COUNTED, shape=shape,
                                   reference=reference, k=k)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-c", code], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
        match = re.search(r"^(?:summary|totals):\s+(\d+)", out.read_text(), re.MULTILINE)
    assert match, "callgrind wrote no total"
    return int(match.group(1))


def instructions_per_task(shape: str, reference: bool = False, root: Path = HERE.parent) -> float:
    """Instructions of one cold compile of ``shape`` (or of graphlib's static_order of its
    graph, ``reference``) at 2,000 tasks, per task."""
    three, one = (_callgrind_total(root, shape, reference, k) for k in (3, 1))
    return (three - one) / 2 / COUNTED


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("shape", ["dense", "produces"])
def test_compile_instructions(shape: str) -> None:
    mine, reference = instructions_per_task(shape), instructions_per_task(shape, reference=True)
    assert mine > 0 and reference > 0
    print(f"\ncompile of {COUNTED:,} tasks ({shape}): {mine:,.0f} instructions per task, "
          f"graphlib static_order {reference:,.0f}: {mine / reference:.2f}x")


if __name__ == "__main__":
    ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE.parent
    for name in ("dense", "produces"):
        counted = instructions_per_task(name, root=ROOT)
        static = instructions_per_task(name, reference=True, root=ROOT)
        print(f"{name:9} compile {counted:10,.0f} instructions/task   graphlib static_order "
              f"{static:10,.0f}   {counted / static:.2f}x")
