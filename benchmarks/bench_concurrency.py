"""Concurrency benchmarks (issue 5): ``python -m pytest benchmarks/bench_concurrency.py``.

* I/O-bound fan-out/fan-in: a source, 200 tasks that each sleep 20 ms, a sink taking all
  200 results; async sleeps and sync ``time.sleep`` (sync handlers run in N threads); at
  N = 1, 4, 16. Speedup = median at N = 1 / median at N, both measured in this session
  (expected near N, at least 0.8 N for N = 4 and 16).
* Overhead: 10,000 no-op async tasks in a wide DAG (root, 10,000 tasks reading it, a sink)
  at N = 8, per task, against the sequential run of the same flow.
* Adaptive: 40 short tasks (20 ms) declared first, a chain of 5 long ones (40 ms each)
  declared last, all of one priority, at N = 4. Declaration order starts the chain last.
  Makespan of the first run of a fresh Flow (no history: plan order), of its second run
  (history known: longest critical path first), and the lower bound
  max(critical path, total work / N).

Timings are reported (table at the end, ``benchmark.extra_info``), never asserted.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from time import perf_counter

import pytest

from report import write_section

from flowdsl import Flow, RunStatus

# -- fan-out / fan-in ---------------------------------------------------------------------
FAN = 200
SLEEP = 0.02
NS = (1, 4, 16)
FAN_ROUNDS = {1: 1, 4: 3, 16: 5}
# -- overhead -----------------------------------------------------------------------------
WIDE = 10_000
WIDE_N = 8
WIDE_ROUNDS = 5
# -- adaptive -----------------------------------------------------------------------------
SHORTS, SHORT = 40, 0.02
CHAIN, LONG = 5, 0.04
ADAPTIVE_N = 4
ADAPTIVE_ROUNDS = 3

#: what the report prints: filled by the benchmarks below, in this session
TIMES: dict[tuple, list[float]] = {}
EXTRA: dict[tuple, dict] = {}


def timed(key, run):
    """``run`` wrapped to append its wall time to ``TIMES[key]`` (so the figures exist
    also under ``--benchmark-disable``) and to keep its last result."""

    def call():
        start = perf_counter()
        result = run()
        TIMES.setdefault(key, []).append(perf_counter() - start)
        call.last = result
        return result

    call.last = None
    return call


def median_of(key):
    values = TIMES.get(key)
    return statistics.median(values) if values else None


def check(result):
    assert result.status is RunStatus.SUCCEEDED, result.summary


# ---------------------------------------------------------------------------------------
# I/O-bound fan-out / fan-in
# ---------------------------------------------------------------------------------------

def fan_flow(variant: str) -> Flow:
    flow = Flow(f"fan-{variant}")

    @flow.task
    def source():
        return 1

    for i in range(FAN):
        if variant == "async":
            async def work(source):
                await asyncio.sleep(SLEEP)
                return source
        else:
            def work(source):
                time.sleep(SLEEP)
                return source
        flow.task(id=f"w{i}")(work)

    @flow.task(depends_on=[f"w{i}" for i in range(FAN)])
    def sink(context):
        return sum(context.get_result(f"w{i}") for i in range(FAN))

    flow.compile()
    return flow


FAN_CASES = [(variant, n) for variant in ("async", "sync") for n in NS]


def fan_run(flow, n):
    return timed(("fan", flow.name.split("-")[1], n), lambda: flow.run(max_concurrency=n))


@pytest.mark.parametrize("variant,n", FAN_CASES, ids=[f"{v}-N{n}" for v, n in FAN_CASES])
def test_fanout_io_bound(benchmark, variant, n):
    flow = fan_flow(variant)
    benchmark.group = f"concurrency: fan-out/fan-in of {FAN} x {SLEEP * 1e3:g} ms sleeps ({variant})"
    if n != 1 and median_of(("fan", variant, 1)) is None:  # N=1 deselected: time it here
        fan_run(flow, 1)()
    call = fan_run(flow, n)
    benchmark.pedantic(call, rounds=FAN_ROUNDS[n], iterations=1, warmup_rounds=0)
    check(call.last)
    assert call.last.results["sink"] == FAN
    mine, base = median_of(("fan", variant, n)), median_of(("fan", variant, 1))
    speedup = base / mine
    info = {"variant": variant, "n": n, "tasks": FAN + 2, "median_s": round(mine, 4),
            "n1_median_s": round(base, 4), "speedup_vs_n1": round(speedup, 2),
            "efficiency": round(speedup / n, 3), "ideal_s": round(FAN * SLEEP / n, 4)}
    if n > 1:
        info["target_0.8N"] = "PASS" if speedup >= 0.8 * n else "MISS"
    benchmark.extra_info.update(info)
    EXTRA[("fan", variant, n)] = info


# ---------------------------------------------------------------------------------------
# Orchestration overhead: 10,000 no-op async tasks, wide
# ---------------------------------------------------------------------------------------

def wide_flow() -> Flow:
    flow = Flow(f"wide-{WIDE}")

    @flow.task
    async def root():
        return 1

    for i in range(WIDE):
        async def noop(root):
            return root
        flow.task(id=f"w{i}")(noop)

    @flow.task(depends_on=[f"w{i}" for i in range(WIDE)])
    async def sink():
        return WIDE

    flow.compile()
    return flow


WIDE_FLOW: list[Flow] = []


def shared_wide_flow() -> Flow:
    if not WIDE_FLOW:
        WIDE_FLOW.append(wide_flow())
    return WIDE_FLOW[0]


@pytest.mark.parametrize("n", [1, WIDE_N], ids=["sequential", f"N{WIDE_N}"])
def test_overhead_wide_async(benchmark, n):
    flow = shared_wide_flow()
    benchmark.group = f"concurrency: {WIDE:,} no-op async tasks, wide DAG"
    call = timed(("wide", n), lambda: flow.run(max_concurrency=n))
    benchmark.pedantic(call, rounds=WIDE_ROUNDS, iterations=1, warmup_rounds=1)
    check(call.last)
    if benchmark.disabled:  # --benchmark-disable: a smoke run, nothing to report
        return
    TIMES[("wide", n)] = TIMES[("wide", n)][1:]  # drop the warm-up round
    gc.collect()
    gc.disable()  # diagnostic: a full GC pass over a 10,000-task run costs tens of ms
    try:
        nogc = timed(("wide-nogc", n), lambda: flow.run(max_concurrency=n))
        for _ in range(3):
            nogc()
    finally:
        gc.enable()
    tasks = WIDE + 2
    per_task = median_of(("wide", n)) / tasks
    info = {"n": n, "tasks": tasks, "median_s": round(median_of(("wide", n)), 4),
            "min_s": round(min(TIMES[("wide", n)]), 4),
            "gc_off_median_s": round(median_of(("wide-nogc", n)), 4),
            "us_per_task": round(per_task * 1e6, 3),
            "self_reported_overhead_us": round(
                call.last.summary["orchestration_overhead_per_task"] * 1e6, 3)}
    seq = median_of(("wide", 1))
    if n != 1 and seq is not None:
        info["sequential_us_per_task"] = round(seq / tasks * 1e6, 3)
        info["extra_us_per_task_vs_sequential"] = round((per_task - seq / tasks) * 1e6, 3)
        info["ratio_vs_sequential"] = round(per_task / (seq / tasks), 2)
    benchmark.extra_info.update(info)
    EXTRA[("wide", n)] = info


# ---------------------------------------------------------------------------------------
# Adaptive scheduling: skewed durations, declaration order is a bad schedule
# ---------------------------------------------------------------------------------------

def sleeper(seconds):
    async def handler():
        await asyncio.sleep(seconds)
        return seconds
    return handler


def skewed_flow() -> Flow:
    flow = Flow("skewed")
    for i in range(SHORTS):
        flow.task(id=f"short{i}")(sleeper(SHORT))
    for i in range(CHAIN):
        flow.task(id=f"long{i}", depends_on=[f"long{i - 1}"] if i else None)(sleeper(LONG))
    flow.compile()
    return flow


def makespan(result) -> float:
    runs = [r for r in result.tasks.values() if r.started_at is not None]
    return max(r.ended_at for r in runs) - min(r.started_at for r in runs)


def lower_bound(durations: dict[str, float]) -> float:
    chain = sum(durations[f"long{i}"] for i in range(CHAIN))
    return max(chain, sum(durations.values()) / ADAPTIVE_N)


def adaptive_setup(warm: bool):
    def setup():
        flow = skewed_flow()
        if warm:
            check(flow.run(max_concurrency=ADAPTIVE_N))  # the first run: history for the next
            assert flow.explain_schedule()["history_known"]
        return (flow,), {}
    return setup


@pytest.mark.parametrize("which", ["first", "second"], ids=["first-run-no-history",
                                                            "second-run-history-known"])
def test_adaptive_skewed(benchmark, which):
    benchmark.group = (f"concurrency: adaptive, {SHORTS} x {SHORT * 1e3:g} ms declared before "
                       f"a chain of {CHAIN} x {LONG * 1e3:g} ms, N={ADAPTIVE_N}")
    spans, bounds = [], []

    def run(flow):
        start = perf_counter()
        result = flow.run(max_concurrency=ADAPTIVE_N)
        TIMES.setdefault(("adaptive", which), []).append(perf_counter() - start)
        check(result)
        spans.append(makespan(result))
        bounds.append(lower_bound({t: r.duration for t, r in result.tasks.items()}))
        if which == "second":
            order = sorted(result.tasks, key=lambda t: result.tasks[t].started_at)
            run.first_started = order[0]

    run.first_started = None
    benchmark.pedantic(run, setup=adaptive_setup(which == "second"), rounds=ADAPTIVE_ROUNDS,
                       iterations=1, warmup_rounds=0)
    info = {"n": ADAPTIVE_N, "wall_median_s": round(median_of(("adaptive", which)), 4),
            "makespan_median_s": round(statistics.median(spans), 4),
            "lower_bound_measured_s": round(statistics.median(bounds), 4),
            "lower_bound_nominal_s": round(max(CHAIN * LONG, (SHORTS * SHORT + CHAIN * LONG)
                                               / ADAPTIVE_N), 4)}
    if run.first_started is not None:
        info["first_started"] = run.first_started
    benchmark.extra_info.update(info)
    EXTRA[("adaptive", which)] = info


# ---------------------------------------------------------------------------------------
# The report, printed at the end of the session (after the suite's own table)
# ---------------------------------------------------------------------------------------

def report_lines() -> list[str]:
    lines = []
    fan = [(v, n) for v, n in FAN_CASES if ("fan", v, n) in TIMES]
    if fan:
        lines.append(f"I/O-bound fan-out/fan-in: {FAN} tasks x {SLEEP * 1e3:g} ms sleep "
                     f"(+ source, sink); speedup vs N=1 in this session; target >= 0.8 N")
        lines.append(f"  {'handlers':<8} {'N':>3} {'median s':>9} {'ideal s':>8} "
                     f"{'speedup':>8} {'efficiency':>10}  target")
        for variant, n in fan:
            mine, base = median_of(("fan", variant, n)), median_of(("fan", variant, 1))
            speedup = base / mine if base else float("nan")
            verdict = "-" if n == 1 else ("PASS" if speedup >= 0.8 * n else "MISS")
            lines.append(f"  {variant:<8} {n:>3} {mine:>9.3f} {FAN * SLEEP / n:>8.3f} "
                         f"{speedup:>8.2f} {speedup / n:>10.2f}  {verdict}")
    seq, conc = median_of(("wide", 1)), median_of(("wide", WIDE_N))
    if seq is not None or conc is not None:
        tasks = WIDE + 2
        lines.append("")
        lines.append(f"Overhead: {WIDE:,} no-op async tasks in a wide DAG ({tasks:,} tasks), "
                     "wall time per task (handlers do nothing)")
        for label, value, key in (("sequential (N=1)", seq, ("wide", 1)),
                                  (f"concurrent N={WIDE_N}", conc, ("wide", WIDE_N))):
            if value is not None:
                self_rep = EXTRA.get(key, {}).get("self_reported_overhead_us")
                lines.append(f"  {label:<18} {value / tasks * 1e6:>8.2f} µs/task median, "
                             f"{min(TIMES[key]) / tasks * 1e6:.2f} min (median run "
                             f"{value * 1e3:.1f} ms; summary's own figure {self_rep} µs/task)")
        nogc_seq, nogc_conc = median_of(("wide-nogc", 1)), median_of(("wide-nogc", WIDE_N))
        if nogc_seq is not None and nogc_conc is not None:
            lines.append(f"  with the GC off during runs: sequential {nogc_seq / tasks * 1e6:.2f}, "
                         f"N={WIDE_N} {nogc_conc / tasks * 1e6:.2f} µs/task (diagnostic)")
        if seq is not None and conc is not None:
            fastest = (min(TIMES[("wide", WIDE_N)]) - min(TIMES[("wide", 1)])) / tasks * 1e6
            lines.append(f"  N={WIDE_N} costs {(conc - seq) / tasks * 1e6:+.2f} µs/task vs "
                         f"sequential ({conc / seq:.2f} x) from the medians, {fastest:+.2f} "
                         "µs/task from the minima")
    first, second = EXTRA.get(("adaptive", "first")), EXTRA.get(("adaptive", "second"))
    if first or second:
        lines.append("")
        lines.append(f"Adaptive, N={ADAPTIVE_N}: {SHORTS} x {SHORT * 1e3:g} ms tasks declared "
                     f"first, a chain of {CHAIN} x {LONG * 1e3:g} ms declared last "
                     "(makespan = last end - first start; medians)")
        for label, info in (("first run (no history)", first),
                            ("second run (history known)", second)):
            if info:
                extra = f"; first started: {info['first_started']}" if "first_started" in info else ""
                lines.append(f"  {label:<28} {info['makespan_median_s'] * 1e3:>7.1f} ms"
                             f" (wall {info['wall_median_s'] * 1e3:.1f} ms{extra})")
        info = second or first
        lines.append(f"  {'lower bound':<28} {info['lower_bound_nominal_s'] * 1e3:>7.1f} ms"
                     f" = max(critical path, total work / N) from the nominal sleeps; "
                     f"{info['lower_bound_measured_s'] * 1e3:.1f} ms from measured durations")
    return lines


class _Report:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        write_section(terminalreporter, config, "flowdsl: concurrency (issue 5)",
                      report_lines(), "flowdsl-concurrency.txt")


@pytest.fixture(scope="module", autouse=True)
def _report(pytestconfig):
    """Print the table at the end of the session (a plugin registered once)."""
    name = "flowdsl-concurrency-report"
    if pytestconfig.pluginmanager.get_plugin(name) is None:
        pytestconfig.pluginmanager.register(_Report(), name)
    yield
