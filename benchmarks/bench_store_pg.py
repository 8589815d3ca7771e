"""The team store's cost (issue 15): a 1,000-task no-op chain journalled in PostgreSQL over
loopback, against SQLite (``durability="normal"``) and no store, in the same session; and
what a task leaves in the database (rows and bytes per task).

The server is a throw-away cluster (tests/pg.py, Debian's ``postgresql`` package), or the one
named by ``FLOWDSL_BENCH_PG`` (a DSN). Figures are reported, never asserted.
"""

from __future__ import annotations

import os

import pytest
from shapes import chain

from flowdsl import SqliteStore

psycopg = pytest.importorskip("psycopg", reason="the `postgres` extra is not installed")

from flowdsl import PostgresStore  # noqa: E402

TASKS = 1000
CASE = "store-pg-chain-1000"
TABLES = ("runs", "sessions", "tasks", "attempts", "flowdsl_leases")
_medians: dict[str, float] = {}


@pytest.fixture(scope="module")
def pg_dsn():
    given = os.environ.get("FLOWDSL_BENCH_PG")
    if given:
        yield given
        return
    from tests.pg import Cluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    cluster = Cluster(bindir)
    cluster.init()
    cluster.start()
    try:
        yield cluster.dsn(cluster.new_schema())
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def flow():
    flow = chain(TASKS).build_flow("store-pg-bench")
    flow.compile()
    return flow


def _record(benchmark, name: str) -> None:
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    _medians[name] = median
    if name != "none" and "none" in _medians:
        added = (median - _medians["none"]) / TASKS * 1e6
        benchmark.extra_info["added_us_per_task"] = round(added, 1)
        print(f"\n[{CASE}] {name}: the store adds {added:.0f} µs per task (median "
              f"{median * 1e3:.0f} ms vs {_medians['none'] * 1e3:.1f} ms without a store)")


def test_chain_without_store(benchmark, flow):
    benchmark.group = CASE
    result = benchmark.pedantic(flow.run, args=(chain(TASKS).initial,), rounds=7, warmup_rounds=1)
    assert result.ok
    _record(benchmark, "none")


def test_chain_with_sqlite(benchmark, flow, tmp_path):
    store = SqliteStore(tmp_path / "runs.db")
    initial = chain(TASKS).initial
    benchmark.group = CASE
    result = benchmark.pedantic(lambda: flow.run(initial, store=store), rounds=7, warmup_rounds=1)
    assert result.ok
    store.close()
    _record(benchmark, "sqlite")


def test_chain_with_postgres(benchmark, flow, pg_dsn):
    store = PostgresStore(pg_dsn)
    initial = chain(TASKS).initial
    benchmark.group = CASE
    result = benchmark.pedantic(lambda: flow.run(initial, store=store), rounds=7, warmup_rounds=1)
    assert result.ok
    store.close()
    _record(benchmark, "postgres")
    if "sqlite" in _medians and not benchmark.disabled:
        print(f"[{CASE}] postgres / sqlite: {_medians['postgres'] / _medians['sqlite']:.1f}x")


def test_rows_and_bytes_per_task(flow, pg_dsn):
    """Rows a run leaves per task, their size (pg_column_size of each row), and how much the
    tables grow on disk per task (dead row versions of the updates included, before vacuum)."""
    store = PostgresStore(pg_dsn)
    initial = chain(TASKS).initial
    sizes = "SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in TABLES)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        flow.run(initial, store=store)  # tables exist and are warm
        before = conn.execute(sizes).fetchone()[0]
        result = flow.run(initial, store=store)
        after = conn.execute(sizes).fetchone()[0]
        run_id = result.run_id
        rows = 0
        logical = 0
        for table in ("runs", "sessions", "tasks", "attempts"):
            n, size = conn.execute(f"SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0) "
                                   f"FROM {table} x WHERE run_id = %s", (run_id,)).fetchone()
            rows += n
            logical += size
    store.close()
    payload = len(repr(result.results["t0"]))
    print(f"\n[{CASE}] per task: {rows / TASKS:.2f} rows, {logical / TASKS:.0f} bytes of rows "
          f"(of which about {payload} of serialized result), {(after - before) / TASKS:.0f} "
          "bytes of table growth before vacuum")
    assert rows >= TASKS  # each task's row (a first attempt that completed has no row of its own)
