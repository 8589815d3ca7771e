"""The run store's cost (issue 4): a 1,000-task no-op chain with ``store=`` against the same
flow without a store, in the same session, and how the file grows per task.

Targets (DESIGN.md, "Run store and resume"): with ``durability="normal"`` at most 100 µs per
task added; the file grows by at most 1 KB per task plus the serialized results.
"""

import os
import sqlite3
import statistics

import pytest
from shapes import chain

from flowdsl import SqliteStore

TASKS = 1000
CASE = "store-chain-1000"
_medians: dict[str, float] = {}


@pytest.fixture(scope="module")
def flow():
    flow = chain(TASKS).build_flow("store-bench")
    flow.compile()
    return flow


def test_chain_without_store(benchmark, flow):
    benchmark.group = CASE
    result = benchmark.pedantic(flow.run, args=(chain(TASKS).initial,), rounds=15, warmup_rounds=2)
    assert result.ok
    if not benchmark.disabled:
        _medians["none"] = benchmark.stats.stats.median


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_chain_with_store(benchmark, flow, tmp_path, durability):
    store = SqliteStore(tmp_path / "runs.db", durability=durability)
    initial = chain(TASKS).initial
    benchmark.group = CASE
    result = benchmark.pedantic(lambda: flow.run(initial, store=store), rounds=15,
                                warmup_rounds=2)
    assert result.ok and result.summary["store_time"] > 0
    store.close()
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    _medians[durability] = median
    if "none" in _medians:
        added = (median - _medians["none"]) / TASKS * 1e6
        benchmark.extra_info["added_us_per_task"] = round(added, 2)
        print(f"\n[{CASE}] durability={durability}: store adds {added:.1f} µs per task "
              f"(median {median * 1e3:.1f} ms vs {_medians['none'] * 1e3:.1f} ms without; "
              "target <= 100 µs for 'normal')")


def test_file_growth_per_task(tmp_path, flow):
    """Bytes the file grows by per task (after a checkpoint), minus the results' own size."""
    path = tmp_path / "growth.db"
    store = SqliteStore(path)
    initial = chain(TASKS).initial
    sizes = []
    for _ in range(5):
        result = flow.run(initial, store=store)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        sizes.append(os.path.getsize(path))
    store.close()
    per_run = statistics.median(b - a for a, b in zip(sizes, sizes[1:]))
    result_bytes = len(repr(result.results["t0"]))  # each task's result is the same payload
    per_task = per_run / TASKS
    print(f"\n[{CASE}] file growth: {per_task:.0f} bytes per task, of which about {result_bytes} "
          f"bytes of serialized result; target <= 1024 + results")
    assert per_task > 0
