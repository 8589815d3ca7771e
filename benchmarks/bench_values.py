"""Typed values in the store (issue 13): the store's overhead per task when each task returns a
1 MB pandas DataFrame, stored as Parquet (the typed codec, JSON-safe base64), against the same
frame stored with ``serializer="pickle"``, and against the flow without a store.

A chain of ``TASKS`` tasks, each returning the same prebuilt frame (the handler's own cost is
nil), in a store that starts empty for each round. Printed with ``-s``:
``python -m pytest benchmarks/bench_values.py -s``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
pytest.importorskip("pyarrow")

from flowdsl import Flow, SqliteStore  # noqa: E402
from flowdsl.store.codec import encode  # noqa: E402

TASKS = 10
CASE = "store-1MB-frame"
_medians: dict[str, float] = {}


def one_mb_frame() -> Any:
    """About 1 MB in memory: ints, floats, strings, a datetime column, an index of labels."""
    rows = 16_000
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "value": rng.normal(size=rows),
        "ratio": rng.random(rows),
        "label": [f"item-{i % 500:03d}" for i in range(rows)],
        "when": pd.date_range("2024-01-01", periods=rows, freq="min"),
    }, index=pd.Index([f"r{i}" for i in range(rows)], name="row"))
    return frame


FRAME = one_mb_frame()


def build(serializer: str) -> Flow:
    flow = Flow(f"frames-{serializer}", serializer=serializer, types=[pd.DataFrame])
    previous = None
    for i in range(TASKS):
        task_id = f"t{i}"
        flow.task(id=task_id, depends_on=[previous] if previous else [])(make_task(task_id))
        previous = task_id
    flow.compile()
    return flow


def make_task(task_id: str) -> Any:
    def task() -> Any:
        return FRAME
    task.__name__ = task_id
    return task


def _run(flow: Flow, store_dir: Path | None, counter: list[int]) -> None:
    if store_dir is None:
        flow.run()
        return
    counter[0] += 1
    store = SqliteStore(store_dir / f"r{counter[0]}.db")
    try:
        flow.run(store=store)
    finally:
        store.close()


def _report(benchmark: Any, name: str) -> None:
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    _medians[name] = median
    if name != "none" and "none" in _medians:
        added = (median - _medians["none"]) / TASKS * 1e3
        benchmark.extra_info["added_ms_per_task"] = round(added, 3)
        print(f"\n[{CASE}] {name}: the store adds {added:.2f} ms per task "
              f"(median {median * 1e3:.1f} ms for {TASKS} tasks, "
              f"{_medians['none'] * 1e3:.2f} ms without a store)")


def test_frames_without_store(benchmark: Any) -> None:
    benchmark.group = CASE
    flow = build("json")
    benchmark.pedantic(_run, args=(flow, None, [0]), rounds=10, warmup_rounds=1)
    _report(benchmark, "none")


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_frames_with_store(benchmark: Any, tmp_path: Path, serializer: str) -> None:
    benchmark.group = CASE
    flow = build(serializer)
    benchmark.pedantic(_run, args=(flow, tmp_path, [0]), rounds=10, warmup_rounds=1)
    _report(benchmark, "parquet (typed codec)" if serializer == "json" else "pickle")


def test_encoded_sizes() -> None:
    """What one stored frame weighs: the typed codec's text against pickle's bytes."""
    typed = encode(FRAME, "json", "bench", types={f"{type(FRAME).__module__}.DataFrame":
                                                  type(FRAME)})
    pickled = pickle.dumps(FRAME, protocol=pickle.HIGHEST_PROTOCOL)
    memory = int(FRAME.memory_usage(deep=True).sum())
    print(f"\n[{CASE}] frame in memory {memory / 1e6:.2f} MB; stored: Parquet as base64 JSON "
          f"{len(typed) / 1e6:.2f} MB, pickle {len(pickled) / 1e6:.2f} MB")
    assert len(typed) > 0 and len(pickled) > 0
