"""A cache hit's cost per task against running a no-op task (issue 13), in one session.

A 200-task chain whose tasks are all ``cache=True``, each reading its upstream result, in an
SQLite store (``durability="normal"``):

- *run*: ``cache=False``: every no-op task runs and is journalled (two transactions);
- *hit*: every task is found in the cache (hash of its input, one look-up, one transaction);
- *miss*: every task is looked up, runs, and is written to the cache too
  (``clear_cache()`` before each round).

Reported: µs per task of each, and hit / run. Run with
``python -m pytest benchmarks/bench_cache.py -s``.
"""

from __future__ import annotations

import pytest

from flowdsl import Flow
from flowdsl.store import SqliteStore

TASKS = 200
CASE = "cache-chain-200"
_medians: dict[str, float] = {}


def cached_chain(tasks: int) -> Flow:
    flow = Flow("cache-bench", cache=True)
    flow.task(lambda seed: seed + 1, id="t0")
    for i in range(1, tasks):
        flow.task(lambda x: x + 1, id=f"t{i}", bind={"x": f"t{i - 1}"})
    flow.compile()
    return flow


@pytest.fixture(scope="module")
def flow() -> Flow:
    return cached_chain(TASKS)


@pytest.fixture
def store(tmp_path):
    opened = SqliteStore(tmp_path / "runs.db")
    yield opened
    opened.close()


def _report(benchmark, name: str) -> None:
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    _medians[name] = median
    per_task = median / TASKS * 1e6
    benchmark.extra_info["us_per_task"] = round(per_task, 2)
    line = f"\n[{CASE}] {name}: {per_task:.1f} µs per task (median {median * 1e3:.2f} ms)"
    if name == "hit" and "run" in _medians:
        ratio = median / _medians["run"]
        benchmark.extra_info["hit_over_run"] = round(ratio, 3)
        line += f"; a cache hit costs {ratio:.2f}x running the no-op task with the store"
    print(line)


def test_run_every_task(benchmark, flow, store):
    benchmark.group = CASE
    result = benchmark.pedantic(lambda: flow.run({"seed": 0}, store=store, cache=False),
                                rounds=15, warmup_rounds=2)
    assert result.summary["cached_tasks"] == 0
    _report(benchmark, "run")


def test_every_task_a_cache_hit(benchmark, flow, store):
    flow.run({"seed": 0}, store=store)  # fills the cache
    benchmark.group = CASE
    result = benchmark.pedantic(lambda: flow.run({"seed": 0}, store=store), rounds=15,
                                warmup_rounds=2)
    assert result.summary["cached_tasks"] == TASKS
    _report(benchmark, "hit")


def test_every_task_a_cache_miss(benchmark, flow, store):
    benchmark.group = CASE

    def miss():
        store.clear_cache()
        return flow.run({"seed": 0}, store=store)

    result = benchmark.pedantic(miss, rounds=15, warmup_rounds=2)
    assert result.summary["cached_tasks"] == 0
    _report(benchmark, "miss")
