#!/usr/bin/env python
"""Per-task overhead of flowdsl and of the peer orchestrators installed here, on the
same chains of no-op tasks (each task returns the small dict it receives).

    python benchmarks/compare_peers.py                  # 20-, 400- and 1,000-task chains
    python benchmarks/compare_peers.py --sizes 20 1000 --repeat 9 --find-limit --markdown

Peers (the optional extra ``compare``; each one missing is skipped with a line saying so):
Apache Hamilton (``sf-hamilton``), Dask's synchronous scheduler (``dask.delayed`` +
``dask.compute(scheduler="synchronous")``), LangGraph, Prefect, Dagster, Luigi.

For every runner the definition (flow, driver, graph, job) is built once, outside the
timing, then the chain is run once to check its result; quick runs are then batched
(``--min-time`` per sample, the batch size found by timing doubling batches first, which
also warms up); the figure is the median of ``--repeat`` timed samples. Per task =
(median - plain loop median) / tasks, the plain loop (the same functions called in order
with a dict of results) being timed in the same process; the last column is that per-task
figure divided by flowdsl's. A runner that cannot run a chain says how it fails
(``--find-limit`` also searches the longest chain it runs). Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.util
import io
import logging
import os
import platform
import statistics
import sys
import time
import traceback
import types
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

# Keep the peers quiet and offline.
os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")  # its temporary server's logs
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import shapes  # noqa: E402
from shapes import PAYLOAD  # noqa: E402


def chain_functions(n: int, annotate: str | None = None) -> list[Callable]:
    """``t0(payload)``, ``t1(t0)``, ... ``t{n-1}(t{n-2})``, each returning its argument."""
    fns, prev = [], "payload"
    for i in range(n):
        fns.append(shapes.make_function(f"t{i}", [prev], prev, annotate=annotate))
        prev = f"t{i}"
    return fns


# ---------------------------------------------------------------------------------
# Runners: setup(n) builds the definition once and returns run() -> the last result
# ---------------------------------------------------------------------------------

def setup_plain(n: int) -> Callable[[], Any]:
    loop, last = shapes.chain(n).plain_loop(), f"t{n - 1}"
    return lambda: loop()[last]


def setup_flowdsl(n: int) -> Callable[[], Any]:
    shape, last = shapes.chain(n), f"t{n - 1}"
    flow = shape.build_flow(f"chain-{n}")
    flow.compile()
    return lambda: flow.run(shape.initial).results[last]


def setup_hamilton(n: int) -> Callable[[], Any]:
    from hamilton import base, driver

    module = types.ModuleType(f"flowdsl_compare_chain_{n}")
    for fn in chain_functions(n, annotate="dict"):
        fn.__module__ = module.__name__
        setattr(module, fn.__name__, fn)
    sys.modules[module.__name__] = module      # Hamilton finds functions through their module
    dr = driver.Builder().with_modules(module).with_adapters(base.DictResult()).build()
    last = f"t{n - 1}"
    return lambda: dr.execute([last], inputs={"payload": PAYLOAD})[last]


def setup_dask(n: int) -> Callable[[], Any]:
    import dask
    from dask import delayed

    node: Any = PAYLOAD
    for fn in chain_functions(n):
        node = delayed(fn, pure=False)(node)
    return lambda: dask.compute(node, scheduler="synchronous")[0]


def setup_langgraph(n: int) -> Callable[[], Any]:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        value: dict

    graph = StateGraph(State)
    previous = START
    for fn in chain_functions(n):
        graph.add_node(fn.__name__, lambda state, fn=fn: {"value": fn(state["value"])})
        graph.add_edge(previous, fn.__name__)
        previous = fn.__name__
    graph.add_edge(previous, END)
    app = graph.compile()
    config = {"recursion_limit": n + 10}      # the default (25) stops any longer chain
    return lambda: app.invoke({"value": PAYLOAD}, config)["value"]


def setup_prefect(n: int) -> Callable[[], Any]:
    from prefect import flow, task

    tasks = [task(fn, name=fn.__name__) for fn in chain_functions(n)]

    @flow(name=f"chain-{n}")
    def chain_flow():
        value = PAYLOAD
        for t in tasks:
            value = t(value)
        return value

    return chain_flow


def setup_dagster(n: int) -> Callable[[], Any]:
    from dagster import job, op

    first = op(name="t0")(shapes.make_function("t0", [], "PAYLOAD", env={"PAYLOAD": PAYLOAD}))
    ops = [first] + [op(name=f"t{i}")(shapes.make_function(f"t{i}", ["x"], "x"))
                     for i in range(1, n)]

    @job(name=f"chain_{n}")
    def chain_job():
        value = ops[0]()
        for o in ops[1:]:
            value = o(value)

    last = f"t{n - 1}"
    return lambda: chain_job.execute_in_process().output_for_node(last)


def setup_luigi(n: int) -> Callable[[], Any]:
    import logging

    import luigi

    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    values: dict[str, Any] = {}
    classes: list[type] = []
    for i, fn in enumerate(chain_functions(n)):
        def requires(self, i=i):
            return classes[i - 1]() if i else []

        def run(self, i=i, fn=fn):
            values[f"t{i}"] = fn(values[f"t{i - 1}"] if i else PAYLOAD)

        def complete(self, i=i):
            return f"t{i}" in values

        classes.append(type(f"FlowdslCompareT{i}N{n}", (luigi.Task,),
                            {"requires": requires, "run": run, "complete": complete}))

    def run_chain():
        values.clear()
        ok = luigi.build([classes[-1]()], local_scheduler=True, log_level="ERROR")
        if not ok:
            raise RuntimeError("luigi.build reported a failure")
        return values[f"t{n - 1}"]

    return run_chain


@dataclass
class Runner:
    name: str
    setup: Callable[[int], Callable[[], Any]]
    distribution: str | None = None       # what to pip install (None: always present)
    module: str | None = None              # what to import to check it is installed


RUNNERS = [
    Runner("plain loop", setup_plain),
    Runner("flowdsl", setup_flowdsl),
    Runner("hamilton", setup_hamilton, "sf-hamilton", "hamilton"),
    Runner("dask (synchronous)", setup_dask, "dask", "dask"),
    Runner("langgraph", setup_langgraph, "langgraph", "langgraph"),
    Runner("dagster", setup_dagster, "dagster", "dagster"),
    Runner("luigi", setup_luigi, "luigi", "luigi"),
    Runner("prefect", setup_prefect, "prefect", "prefect"),   # last: its server keeps running
]


# ---------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    runner: str
    n: int
    median: float | None = None        # seconds per run
    setup: float | None = None         # seconds to build the definition once
    rounds: int = 0
    error: str | None = None


def describe_failure(exc: BaseException, stage: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        parts = Path(last.filename).parts
        short = "/".join(parts[-2:]) if len(parts) > 1 else last.filename
        where = f" in {short}:{last.lineno} ({last.name})"
    message = str(exc).strip().splitlines()[0][:140] if str(exc).strip() else ""
    depth = ""
    if len(frames) > 50:   # deep recursion: name the function that recurses
        counts = Counter((Path(f.filename).name, f.name) for f in frames)
        (file, name), times = counts.most_common(1)[0]
        depth = f", traceback {len(frames)} frames deep, {times} of them in {file} ({name})"
    return f"fails at {stage}: {type(exc).__name__}: {message}{where}{depth}"


@contextlib.contextmanager
def quiet():
    """Swallow what a peer prints (Hamilton prints a banner on every error)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def measure(runner: Runner, n: int, repeat: int, min_time: float) -> Outcome:
    outcome = Outcome(runner.name, n)
    stage = "build"
    try:
        with quiet():
            start = time.perf_counter()
            run = runner.setup(n)
            outcome.setup = time.perf_counter() - start
            stage = "first run"
            start = time.perf_counter()
            result = run()
            first = time.perf_counter() - start
            if result != PAYLOAD:
                raise AssertionError(f"wrong result: {result!r:.80}")
            stage = "timed runs"
            number = 1
            if first < min_time:  # batch quick runs so that a sample >= min_time
                number = calibrate(run, min_time)
            rounds = repeat if first < 1.0 else min(repeat, 3)
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(number):
                    run()
                samples.append((time.perf_counter() - start) / number)
        outcome.median, outcome.rounds = statistics.median(samples), rounds
    except BaseException as exc:  # noqa: BLE001 - RecursionError, peers' own errors, ...
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome.error = describe_failure(exc, stage)
    return outcome


def calibrate(run: Callable[[], Any], min_time: float) -> int:
    """How many runs make a sample of ``min_time``, from batches timed after the first run
    (doubling, like `timeit.Timer.autorange`): the first run pays one-time costs (lazy
    imports, caches, the interpreter's specialisation), so a batch sized from it alone was
    a few milliseconds, too short to leave the warm-up behind (the 20-task chains of the
    plain loop and of flowdsl measured 1.7-1.9x their warm time). The batches warm up too."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4:
            return max(1, round(number * min_time / elapsed))
        number *= 2


def find_limit(runner: Runner, low: int, high: int) -> int:
    """Longest chain in (low, high) that ``runner`` builds and runs once (bisection),
    assuming ``low`` works and ``high`` fails."""
    while high - low > 1:
        mid = (low + high) // 2
        try:
            with quiet():
                ok = runner.setup(mid)() == PAYLOAD
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            ok = False
        low, high = (mid, high) if ok else (low, mid)
    return low


def version_of(runner: Runner) -> str:
    name = runner.distribution or ("flowdsl" if runner.name == "flowdsl" else None)
    if name is None:
        return ""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "source tree" if name == "flowdsl" else "?"


def available(runner: Runner) -> str | None:
    """None if the runner's package is installed, else why not. Nothing is imported here
    (a peer is imported when its turn comes), so flowdsl is timed before any peer's
    imports grow the process."""
    if runner.module is None:
        return None
    if importlib.util.find_spec(runner.module) is None:
        return f"not installed; pip install {runner.distribution}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 400, 1000],
                        help="chain lengths (default: 20 400 1000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed samples per runner (median)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds per sample: quick runs are batched up to this")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="peers to run (substring match), besides flowdsl and the plain loop")
    parser.add_argument("--find-limit", action="store_true",
                        help="for a peer that fails on a chain, bisect the longest chain it runs")
    parser.add_argument("--max-run-seconds", type=float, default=30.0,
                        help="skip a chain on which a peer's run is predicted (from its shorter "
                             "chains) to take longer than this (default 30)")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args(argv)

    runners = [r for r in RUNNERS if r.module is None or not args.only
               or any(o.lower() in r.name for o in args.only)]
    usable = []
    print(f"flowdsl peer comparison, {datetime.date.today().isoformat()}, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores")
    for runner in runners:
        why_not = available(runner)
        if why_not:
            print(f"  skip {runner.name}: {why_not}")
        else:
            usable.append(runner)
            version = version_of(runner)
            if runner.name == "flowdsl":
                import flowdsl
                version = f"{version} ({Path(flowdsl.__file__).parent})"
            if version:
                print(f"  {runner.name} {version}")
    print(f"Per run: median of {args.repeat} samples (3 when a run takes over 1 s); "
          "per task = (median - plain loop median) / tasks.")
    print("Each runner is timed on every chain before the next runner starts, in the order below.")

    markdown: list[str] = []
    seconds_per_task: dict[str, float] = {}
    # Runner by runner (all sizes), so that what a heavy peer leaves running in the
    # background (Prefect's temporary server) cannot slow down the runners before it.
    sizes = sorted(args.sizes)
    measured: dict[tuple[str, int], Outcome] = {}
    heap: dict[str, int] = {}
    for r in usable:
        for n in sizes:
            predicted = seconds_per_task.get(r.name, 0.0) * n
            if predicted > args.max_run_seconds:
                measured[r.name, n] = Outcome(r.name, n, error=(
                    f"not run: a run would take about {predicted:.0f} s "
                    f"(over --max-run-seconds {args.max_run_seconds:g})"))
                continue
            outcome = measured[r.name, n] = measure(r, n, args.repeat, args.min_time)
            if outcome.median is not None:
                seconds_per_task[r.name] = outcome.median / n
        heap[r.name] = len(gc.get_objects())

    for n in sizes:
        outcomes = [measured[r.name, n] for r in usable]
        plain = outcomes[0].median
        by_name = {o.runner: o for o in outcomes}
        own = by_name.get("flowdsl")
        flowdsl_per_task = (own.median - plain) / n if own and own.median and plain else None

        print()
        print(f"Chain of {n:,} no-op tasks")
        header = f"  {'runner':<20} {'median ms/run':>14} {'µs/task':>9} {'x flowdsl':>10} {'build s':>8}"
        print(header)
        print("  " + "-" * (len(header) - 2))
        markdown.append(f"\n| chain of {n:,} | median ms/run | µs/task (minus plain loop) | x flowdsl |")
        markdown.append("|---|---:|---:|---:|")
        for o in outcomes:
            if o.error:
                limit = ""
                runner = next(r for r in usable if r.name == o.runner)
                below = [m for m in sizes if m < n and measured[o.runner, m].median is not None]
                if (args.find_limit and below and o.runner != "flowdsl"
                        and not o.error.startswith("not run")):
                    limit = f" (longest chain it runs: {find_limit(runner, max(below), n):,})"
                print(f"  {o.runner:<20} {o.error}{limit}")
                markdown.append(f"| {o.runner} | {o.error}{limit} | | |")
                continue
            if o.runner == "plain loop":
                per_task, ratio = None, None
            else:
                per_task = (o.median - plain) / n * 1e6 if plain else None
                ratio = (per_task / (flowdsl_per_task * 1e6)
                         if per_task is not None and flowdsl_per_task and flowdsl_per_task > 0
                         else None)
            shown_task = "-" if per_task is None else f"{per_task:.2f}"
            shown_ratio = "-" if ratio is None else f"{ratio:.2f}"
            print(f"  {o.runner:<20} {o.median * 1e3:>14.3f} {shown_task:>9} {shown_ratio:>10} "
                  f"{o.setup:>8.3f}")
            markdown.append(f"| {o.runner} | {o.median * 1e3:.3f} | {shown_task} | {shown_ratio} |")

    print()
    print("Objects tracked by the garbage collector after each runner (a full collection walks"
          " them all, so the per-task cost of a runner that allocates grows with the imports"
          " and runners before it):")
    print("  " + ", ".join(f"{name} {count:,}" for name, count in heap.items()))
    if args.markdown:
        print("\nMarkdown:")
        print("\n".join(markdown))
    sys.stdout.flush()
    # Prefect's temporary server logs errors while it shuts down at exit: not ours to show.
    logging.disable(logging.CRITICAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
