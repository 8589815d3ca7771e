"""Shared fixtures of the benchmark suite and its final summary table.

Every benchmark reports its median through the ``record`` fixture:

    record(case="chain-1000", impl="flowdsl", tasks=1000, baseline=shape.plain_loop())

Within a case the plain-loop baseline runs first (the baseline tests are defined
first in each file), so a flowdsl benchmark can store its overhead per task,
(flowdsl median - plain loop median) / tasks, in ``benchmark.extra_info`` (saved
with ``--benchmark-json`` / ``--benchmark-autosave``). When the baseline was
deselected (``-k``), ``baseline=`` is timed on the spot instead.

At the end of the session ``pytest_terminal_summary`` prints one table of median
µs/task and ratio vs the plain loop for every case, then the performance targets
of DESIGN.md with PASS / MISS. Targets are reported, never asserted: timings on a
shared 2-core machine are too noisy for a pass/fail test.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from report import write_section

PLAIN = "plain loop"
STORE = "flowdsl + sqlite"  # bench_instructions: the chain with the SQLite store
GRAPHLIB = "graphlib"

# Targets (DESIGN.md, "Performance targets")
OVERHEAD_TARGET_US = 5.0
FLAT_FACTOR = 1.5
COMPILE_TARGET_MS = 60.0  # CPU time (issue 16)
IMPORT_TARGET_MS = 15.0  # issue 16

#: order of the cases in the final table (by prefix; a stable sort keeps sizes in order)
CASE_ORDER = ("chain-", "produces-chain-", "async-chain-", "context-", "wide-", "lattice-",
              "compile-", "import", "accuracy-")


@dataclass
class Entry:
    case: str
    impl: str
    tasks: int | None
    median: float                  # seconds per run (or per call)
    extra: dict[str, Any] = field(default_factory=dict)
    min: float | None = None       # fastest round: less sensitive to other load on the machine
    mean: float | None = None      # amortizes rare costs (a full GC pass every few runs)

    @property
    def us_per_task(self) -> float | None:
        return self.median / self.tasks * 1e6 if self.tasks else None


class Results:
    """Medians collected during the session, in the order they were recorded."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        #: (case, impl) -> instructions per task, counted with callgrind (bench_instructions)
        self.instructions: dict[tuple[str, str], float] = {}

    def add(self, entry: Entry) -> Entry:
        self.entries[(entry.case, entry.impl)] = entry
        return entry

    def get(self, case: str, impl: str) -> Entry | None:
        return self.entries.get((case, impl))

    def overhead_us(self, case: str, impl: str = "flowdsl", stat: str = "median") -> float | None:
        """(flowdsl - plain loop) / tasks in µs, from the medians (or the minima)."""
        entry, base = self.get(case, impl), self.get(case, PLAIN)
        if entry is None or base is None or not entry.tasks:
            return None
        mine, theirs = getattr(entry, stat), getattr(base, stat)
        if mine is None or theirs is None:
            return None
        return (mine - theirs) / entry.tasks * 1e6


RESULTS_KEY = pytest.StashKey[Results]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS_KEY] = Results()


@pytest.fixture(autouse=True)
def _collect_garbage_first():
    """Start every benchmark from a collected heap, so that garbage left by earlier
    benchmarks does not make the garbage collector's passes slower in this one."""
    gc.collect()
    yield


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config) -> Results:
    return pytestconfig.stash[RESULTS_KEY]


def quick_median(fn: Callable[[], Any], repeat: int = 7, min_time: float = 0.02) -> float:
    """Median seconds per call of ``fn``, timed in batches of at least ``min_time``."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 4
    samples = [elapsed / number]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def benchmark_stat(benchmark, name: str = "median") -> float | None:
    """A statistic of a benchmark that has run, or None (e.g. ``--benchmark-disable``)."""
    stats = getattr(benchmark, "stats", None)
    inner = getattr(stats, "stats", None)
    return getattr(inner, name, None)


@pytest.fixture
def record(benchmark, results: Results):
    """Store this benchmark's median in the session table (call it after running).

    ``baseline``: a callable equivalent to the plain-loop baseline of ``case``,
    timed here only if that baseline's own benchmark did not run in this session.
    Extra keyword arguments go to ``benchmark.extra_info`` and to the table.
    """

    def _record(case: str, impl: str, tasks: int | None = None,
                baseline: Callable[[], Any] | None = None, **extra: Any) -> Entry | None:
        benchmark.extra_info.update({"case": case, "impl": impl, "tasks": tasks, **extra})
        median = benchmark_stat(benchmark, "median")
        if median is None:
            return None
        entry = results.add(Entry(case, impl, tasks, median, dict(extra),
                                  min=benchmark_stat(benchmark, "min"),
                                  mean=benchmark_stat(benchmark, "mean")))
        if impl in (PLAIN, GRAPHLIB) or not tasks:
            return entry
        if results.get(case, PLAIN) is None and baseline is not None:
            quick = quick_median(baseline)
            results.add(Entry(case, PLAIN, tasks, quick,
                              {"note": "timed inline: its benchmark was deselected"}, min=quick, mean=quick))
        base = results.get(case, PLAIN)
        if base is not None:
            overhead = (median - base.median) / tasks
            benchmark.extra_info["plain_loop_median_s"] = base.median
            benchmark.extra_info["overhead_per_task_us"] = round(overhead * 1e6, 3)
            benchmark.extra_info["ratio_vs_plain_loop"] = round(median / base.median, 2)
            if entry.min is not None and base.min is not None:
                benchmark.extra_info["overhead_per_task_us_from_minima"] = round(
                    (entry.min - base.min) / tasks * 1e6, 3)
        return entry

    return _record


# ---------------------------------------------------------------------------------
# The final table
# ---------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def summary_lines(results: Results) -> list[str]:
    if not results.entries:
        return []
    lines = []
    header = (f"{'case':<24} {'implementation':<28} {'tasks':>6} {'median ms':>10} "
              f"{'µs/task':>9} {'overhead µs/task':>17} {'x plain':>8} {'self-rep. µs/task':>18}")
    lines.append(header)
    lines.append("-" * len(header))
    cases: list[str] = []
    for case, _ in results.entries:
        if case not in cases:
            cases.append(case)
    cases.sort(key=lambda c: next((i for i, prefix in enumerate(CASE_ORDER) if c.startswith(prefix)),
                                  len(CASE_ORDER)))
    for case in cases:
        base = results.get(case, PLAIN)
        rows = [e for (c, _), e in results.entries.items() if c == case]
        rows.sort(key=lambda e: (e.impl != PLAIN, e.impl != GRAPHLIB, e.impl))
        for e in rows:
            overhead = ratio = None
            if base is not None and e.tasks and e is not base:
                overhead = (e.median - base.median) / e.tasks * 1e6
            if base is not None and e.tasks:
                ratio = e.median / base.median
            self_reported = e.extra.get("self_reported_overhead_us")
            lines.append(
                f"{case:<24} {e.impl:<28} {e.tasks or '':>6} {e.median * 1e3:>10.3f} "
                f"{_fmt(e.us_per_task):>9} {_fmt(overhead):>17} {_fmt(ratio):>8} "
                f"{_fmt(self_reported):>18}")
    lines.append("")
    lines.append("overhead µs/task = (median - plain loop median) / tasks, same session;"
                 " self-rep. = flowdsl.measure_overhead(...).median (summary's"
                 " orchestration_overhead_per_task)")
    lines.extend(target_lines(results))
    lines.append("")
    lines.append(f"Objects tracked by the garbage collector in this process: {len(gc.get_objects()):,}"
                 " (a full collection walks them all: the cost per task of what a run keeps"
                 " grows with the heap)")
    return lines


def target_lines(results: Results) -> list[str]:
    lines = ["", "Targets (DESIGN.md, 'Performance targets'; reported, not asserted):"]

    def verdict(ok: bool | None) -> str:
        return {True: "PASS", False: "MISS", None: "n/a "}[ok]

    def check(label: str, value: float | None, limit: float, unit: str, extra: str = "") -> None:
        ok = None if value is None else value <= limit
        shown = "not measured" if value is None else f"{value:.2f} {unit}"
        lines.append(f"  [{verdict(ok)}] {label}: {shown} (limit {limit:g} {unit}){extra}")

    def from_minima(case: str, impl: str = "flowdsl") -> str:
        value = results.overhead_us(case, impl, stat="min")
        return "" if value is None else f"; from the minima: {value:.2f} µs"

    base_1k = results.overhead_us("chain-1000")
    check("chain of 1,000 no-op tasks, overhead per task", base_1k, OVERHEAD_TARGET_US, "µs",
          from_minima("chain-1000"))
    check("produces-chain of 1,000 tasks, overhead per task",
          results.overhead_us("produces-chain-1000"), OVERHEAD_TARGET_US, "µs",
          from_minima("produces-chain-1000"))
    for case, label in (("chain-10000", "chain of 10,000 tasks"),
                        ("context-100000-keys", "chain of 1,000 with a 100,000-key context")):
        value = results.overhead_us(case)
        if value is None or base_1k is None:
            check(f"{label}, overhead per task vs 1,000 chain", None, FLAT_FACTOR, "x")
            continue
        ratio = value / base_1k if base_1k > 0 else float("inf")
        check(f"{label}: {value:.2f} µs/task, ratio to the 1,000 chain's {base_1k:.2f} µs",
              ratio, FLAT_FACTOR, "x",
              f"; absolute {value:.2f} µs vs {FLAT_FACTOR * OVERHEAD_TARGET_US:g} µs"
              f" ({verdict(value <= FLAT_FACTOR * OVERHEAD_TARGET_US).strip()})"
              + _minima_ratio(results, case))
        if case == "chain-10000":
            for n in (1000, 10000):
                lines.extend(_gc_diagnostic(results, n))
    cold = results.get("compile-10000", "flowdsl cold compile")
    ratio = "" if cold is None or "ratio_to_graphlib" not in cold.extra else (
        f"; wall median {cold.median * 1e3:.1f} ms; {cold.extra['ratio_to_graphlib']:.2f}x "
        f"graphlib static_order's {cold.extra['graphlib_cpu_ms']:.1f} ms CPU")
    check("compile 10,000 tasks / ~50,000 edges (cold), CPU time",
          None if cold is None else cold.extra.get("cpu_ms", cold.median * 1e3),
          COMPILE_TARGET_MS, "ms", ratio)
    imp, deps = results.get("import", "import flowdsl"), results.get("import", "import dependencies")
    extra = ""
    if imp is not None and "importtime_flowdsl_ms" in imp.extra:
        extra = (f"; -X importtime: flowdsl adds {imp.extra['importtime_flowdsl_ms']:.1f} ms"
                 " after its dependencies")
        if "importtime_first_run_ms" in imp.extra:
            extra += f" ({imp.extra['importtime_first_run_ms']:.1f} ms with a first run's imports)"
    check("import flowdsl minus import of its dependencies",
          None if imp is None or deps is None else (imp.median - deps.median) * 1e3,
          IMPORT_TARGET_MS, "ms", extra)
    if imp is not None and imp.extra.get("slowest_own_imports"):
        lines.append("         slowest modules imported for flowdsl (self time): "
                     + ", ".join(imp.extra["slowest_own_imports"][:5]))
    for n in (25, 1000):
        e = results.get(f"accuracy-{n}", "flowdsl")
        value = None if e is None else e.extra.get("accuracy")
        label = f"context accuracy, random DAG of {n} tasks"
        if value is None:
            lines.append(f"  [n/a ] {label}: not measured")
        else:
            lines.append(f"  [{verdict(value >= 1.0)}] {label}: {value:.2%} of "
                         f"{e.extra.get('checks')} declared inputs (required 100%)")
    return lines


def _gc_diagnostic(results: Results, n: int) -> list[str]:
    """What Python's garbage collector does to the chain of ``n`` tasks."""
    entry = results.get(f"chain-{n}", "flowdsl")
    no_gc = results.overhead_us(f"chain-{n}", "flowdsl (gc disabled)")
    parts = []
    if entry is not None and "gc_full_passes_per_run" in entry.extra:
        parts.append(f"{entry.extra['gc_full_passes_per_run']:.1f} full GC passes per run,"
                     f" {entry.extra['gc_ms_per_run']:.1f} ms per run in GC")
    mean = results.overhead_us(f"chain-{n}", stat="mean")
    if mean is not None:
        parts.append(f"overhead from the mean {mean:.2f} µs/task")
    if no_gc is not None:
        parts.append(f"with the GC off during runs {no_gc:.2f} µs/task")
    return [f"         diagnostic, chain of {n:,}: " + "; ".join(parts)] if parts else []


def _minima_ratio(results: Results, case: str) -> str:
    mine, base = results.overhead_us(case, stat="min"), results.overhead_us("chain-1000", stat="min")
    if mine is None or not base or base <= 0:
        return ""
    return f"; from the minima: {mine:.2f} µs, {mine / base:.2f} x"


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, None)
    lines = summary_lines(results) if results is not None else []
    if results is not None and results.instructions:
        lines += ["", *instruction_lines(results)]
    write_section(terminalreporter, config, "flowdsl: overhead per task vs baselines (medians)",
                  lines, "flowdsl-summary.txt")


def instruction_lines(results: Results) -> list[str]:
    """Instructions per task (callgrind), beside the timings: deterministic on a shared machine."""
    lines = ["Instructions per task (valgrind callgrind, one run = (1 + m runs - 1 run) / m, "
             "m runs >= 40,000 task runs, PYTHONHASHSEED=0):",
             f"  {'case':22} {'plain loop':>12} {'flowdsl':>12} {'overhead':>12} {'µs/task':>9}"]
    for case in sorted({case for case, _ in results.instructions}):
        plain = results.instructions.get((case, PLAIN))
        mine = results.instructions.get((case, "flowdsl"))
        if plain is None or mine is None:
            continue
        timed = results.overhead_us(case)
        lines.append(f"  {case:22} {plain:12,.0f} {mine:12,.0f} {mine - plain:12,.0f} "
                     f"{'-' if timed is None else f'{timed:9.2f}'}")
    for case in sorted({case for case, impl in results.instructions if impl == STORE}):
        stored, bare = results.instructions[(case, STORE)], results.instructions.get((case, "flowdsl"))
        if bare is not None:
            lines.append(f"  {case:22} with the SQLite store (fresh file): {stored:12,.0f}, "
                         f"{stored - bare:,.0f} more than without")
    return lines
