"""Mapping: a no-op task mapped over 1,000 and 10,000 elements, against a plain loop over the
same list, and the 1,000-task no-op chain measured in the same run.

Per element = (map median - plain loop median) / elements; per task = (chain median - its
plain loop median) / tasks. DESIGN's target: per element at most 2x the chain's per task.
The ratio is printed by the last test (reported, never asserted):

    python -m pytest benchmarks/bench_map.py -s
"""

from __future__ import annotations

from typing import Any

import pytest

from flowdsl import Flow
from shapes import chain

SIZES = [1000, 10000]
ROUNDS = 10
MEDIANS: dict[str, float] = {}


def noop(item: Any) -> Any:
    return item


def map_flow() -> Flow:
    flow = Flow("bench-map")

    @flow.task(map_over="items")
    def each(items: Any) -> Any:
        return items

    return flow


def _median(benchmark: Any) -> float:
    stats = benchmark.stats
    return float(stats.stats.median if hasattr(stats, "stats") else stats["median"])


@pytest.mark.parametrize("n", SIZES)
def test_plain_loop_over_the_list(benchmark: Any, n: int) -> None:
    items = list(range(n))
    benchmark.group = f"map-{n}"
    result = benchmark.pedantic(lambda: [noop(item) for item in items], rounds=ROUNDS,
                                warmup_rounds=1)
    assert result == items
    MEDIANS[f"plain-{n}"] = _median(benchmark)


@pytest.mark.parametrize("n", SIZES)
def test_flowdsl_map(benchmark: Any, n: int) -> None:
    items = list(range(n))
    flow = map_flow()
    assert flow.run({"items": items}).results["each"] == items  # compiled, checked, untimed
    benchmark.group = f"map-{n}"
    benchmark.pedantic(lambda: flow.run({"items": items}), rounds=ROUNDS, warmup_rounds=1)
    MEDIANS[f"map-{n}"] = _median(benchmark)


def test_chain_plain_loop(benchmark: Any) -> None:
    shape = chain(1000)
    benchmark.group = "chain-1000 (same run)"
    benchmark.pedantic(shape.plain_loop(), rounds=ROUNDS, warmup_rounds=1)
    MEDIANS["chain-plain"] = _median(benchmark)


def test_chain_flowdsl(benchmark: Any) -> None:
    shape = chain(1000)
    flow = shape.build_flow()
    flow.run(shape.initial)
    benchmark.group = "chain-1000 (same run)"
    benchmark.pedantic(lambda: flow.run(shape.initial), rounds=ROUNDS, warmup_rounds=1)
    MEDIANS["chain-flowdsl"] = _median(benchmark)


def test_report_the_ratio() -> None:
    """Per-element cost / the chain's per-task overhead (target <= 2x), printed."""
    if "chain-flowdsl" not in MEDIANS or "chain-plain" not in MEDIANS:
        pytest.skip("the chain benchmarks did not run in this session")
    per_task = (MEDIANS["chain-flowdsl"] - MEDIANS["chain-plain"]) / 1000
    for n in SIZES:
        if f"map-{n}" not in MEDIANS or f"plain-{n}" not in MEDIANS:
            continue
        per_element = (MEDIANS[f"map-{n}"] - MEDIANS[f"plain-{n}"]) / n
        print(f"\nmap-{n}: {per_element * 1e6:.2f} us per element; chain-1000: "
              f"{per_task * 1e6:.2f} us per task; ratio {per_element / per_task:.2f}x "
              f"(target <= 2x)")
