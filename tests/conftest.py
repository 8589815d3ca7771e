"""Shared fixtures. Core behaviour tests take ``run_flow`` so that every executor
(sequential, concurrent and Dask) runs the same assertions."""

from __future__ import annotations

import signal
from typing import Any, Callable, Iterator

import pytest

from flowdsl import ConcurrentExecutor, Flow, SequentialExecutor


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_raises_keyboard_interrupt() -> Iterator[None]:
    """Tests that send SIGINT expect Python's default handler (KeyboardInterrupt), which Python
    does not install when it starts with SIGINT ignored, as in a background job."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class FakeSleep:
    """Records the waits between retries instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture(scope="session")
def dask_client() -> Any:
    """A real LocalCluster with 2 worker processes, shared by the session's Dask tests."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


EXECUTORS = {
    "sequential": lambda sleep, request: SequentialExecutor(sleep=sleep, async_sleep=sleep.asleep),
    "concurrent": lambda sleep, request: ConcurrentExecutor(
        4, sleep=sleep, async_sleep=sleep.asleep),
    "dask": lambda sleep, request: _dask_executor(sleep, request),
}


def _dask_executor(sleep: FakeSleep, request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("in_process"):
        pytest.skip("shares Python objects with its handlers: runs in this process only")
    pytest.importorskip("distributed")  # the `dask` extra
    from flowdsl import DaskExecutor

    client = request.getfixturevalue("dask_client")
    return DaskExecutor(client, sleep=sleep, async_sleep=sleep.asleep)


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request: pytest.FixtureRequest, fake_sleep: FakeSleep) -> Any:
    """Each executor under test, with retry waits recorded instead of slept.

    Tests marked ``one_at_a_time`` assert what happens to tasks *not yet started* when a
    critical task fails or the run is interrupted; with N > 1 such tasks may already be
    running (DESIGN: determinism holds "unless a critical task fails"), so they run on the
    sequential executor only; tests/test_concurrency.py covers those rules for N > 1.
    """
    if request.param != "sequential" and request.node.get_closest_marker("one_at_a_time"):
        pytest.skip("asserts plan-order semantics of a critical stop or an interrupt")
    return EXECUTORS[request.param](fake_sleep, request)


@pytest.fixture
def run_flow(executor: Any) -> Callable[..., Any]:
    """``run_flow(flow, initial=None, **options)``: ``flow.run`` on the executor under test."""

    def run(flow: Flow, initial: Any = None, **options: Any) -> Any:
        options.setdefault("executor", executor)
        return flow.run(initial, **options)

    return run


@pytest.fixture
def flow(request: pytest.FixtureRequest) -> Flow:
    """A fresh flow per test, named after it."""
    return Flow(request.node.name)


# -- run stores: SQLite and a throw-away PostgreSQL server (tests/pg.py) ---------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    """A PostgreSQL server for the session, started from Debian's `postgresql` package."""
    pytest.importorskip("psycopg", reason="the `postgres` extra (psycopg 3) is not installed")
    from tests.pg import Cluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql; .ci/run does it)")
    cluster = Cluster(bindir)
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_schema(pg_cluster: Any) -> str:
    """A fresh, empty schema of the session's server (one per test)."""
    return str(pg_cluster.new_schema())


@pytest.fixture
def pg_dsn(pg_cluster: Any, pg_schema: str) -> str:
    """A DSN whose tables live in a schema of this test's own."""
    return str(pg_cluster.dsn(pg_schema))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Where a durable test keeps its runs: an SQLite file, then a PostgreSQL DSN."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("pg_dsn"))
