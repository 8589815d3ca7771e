"""``resources=``: live objects handed to the parameters named like them, never stored,
hashed or copied, needed again on resume (DESIGN "Values, resources and caching")."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from flowdsl import (
    Flow,
    MissingInputError,
    RunStatus,
    SerializationError,
    TaskStatus,
)
from flowdsl.store import SqliteStore


class Connection:
    """A live object: equal only to itself, and refusing to be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # cannot pickle
        self.rows: list[str] = []


def build(calls: list[str], fail: dict[str, bool] | None = None) -> Flow:
    flow = Flow("with_db")

    @flow.task
    def extract(source):
        calls.append("extract")
        return [f"{source}:{i}" for i in range(3)]

    @flow.task
    def load(extract, db):
        calls.append("load")
        if fail and fail.get("load"):
            raise RuntimeError("the database is down")
        db.rows.extend(extract)
        return len(extract)

    return flow


@pytest.mark.in_process
def test_a_resource_reaches_the_parameter_named_like_it_and_is_never_copied(run_flow) -> None:
    conn, calls = Connection(), []
    result = run_flow(build(calls), {"source": "s"}, resources={"db": conn})
    assert result.results["load"] == 3
    assert conn.rows == ["s:0", "s:1", "s:2"]  # the very object, not a copy
    assert result.context.records["load"].reads["db"] is conn
    assert "db" not in result.context.data  # the inputs: a resource is not one
    assert result.context.resources["db"] is conn


def test_a_resource_counts_as_a_provided_input(run_flow) -> None:
    with pytest.raises(MissingInputError, match="'db'"):
        run_flow(build([]), {"source": "s"})
    assert "db" in build([]).compile().inputs


@pytest.mark.in_process
def test_a_resource_is_never_stored_and_must_be_given_again_on_resume(run_flow, tmp_path) -> None:
    store, calls, fail = tmp_path / "runs.db", [], {"load": True}
    conn = Connection()
    flow = build(calls, fail)
    first = run_flow(flow, {"source": "s"}, store=store, resources={"db": conn},
                     raise_on_failure=False)
    assert first.tasks["load"].status is TaskStatus.FAILED
    stored = SqliteStore(store).get_run(first.run_id)
    assert stored["inputs"] == {"source": "s"}
    raw = sqlite3.connect(store).execute("SELECT inputs FROM runs").fetchone()[0]
    assert "db" not in raw and "Connection" not in raw

    fail["load"] = False
    calls.clear()
    with pytest.raises(MissingInputError, match="'db'"):
        run_flow(flow, store=store, resume=first.run_id)
    assert calls == []  # before any task
    resumed = run_flow(flow, store=store, resume=first.run_id, resources={"db": Connection()})
    assert resumed.status is RunStatus.SUCCEEDED
    assert calls == ["load"]  # extract restored; another connection is not another input


def test_an_input_that_cannot_be_stored_names_the_key_and_suggests_resources(
        run_flow, tmp_path) -> None:
    calls: list[str] = []
    conn = sqlite3.connect(":memory:")
    with pytest.raises(SerializationError) as caught:
        run_flow(build(calls), {"source": "s", "db": conn}, store=tmp_path / "runs.db")
    message = str(caught.value)
    assert "'db'" in message and "sqlite3.Connection" in message
    assert "resources={'db': ...}" in message
    assert calls == []
    assert SqliteStore(tmp_path / "runs.db").runs() == []


def test_pickle_serializer_inputs_also_suggest_resources(tmp_path: Path) -> None:
    flow = Flow("pickled", serializer="pickle")
    flow.task(lambda db: 1, id="use")
    with pytest.raises(SerializationError, match=r"resources=\{'db': \.\.\.\}"):
        flow.run({"db": Connection()}, store=tmp_path / "runs.db")


def test_a_resource_named_like_a_task_or_also_given_as_input_is_refused() -> None:
    flow = build([])
    with pytest.raises(ValueError, match="'extract' is a task id"):
        flow.run({"source": "s"}, resources={"extract": 1, "db": Connection()})
    with pytest.raises(ValueError, match="'db' is given both"):
        flow.run({"source": "s", "db": 1}, resources={"db": Connection()})
    flow.task(lambda: {"rows": 1}, id="counts", produces=["rows"])
    with pytest.raises(ValueError, match="'rows' is a key a task"):
        flow.run({"source": "s"}, resources={"db": Connection(), "rows": 2})


def test_arun_takes_resources() -> None:
    conn = Connection()
    result = asyncio.run(build([]).arun({"source": "a"}, resources={"db": conn}))
    assert result.results["load"] == 3 and len(conn.rows) == 3


def test_on_dask_a_resource_that_cannot_pickle_fails_the_task_that_uses_it(dask_client) -> None:
    from flowdsl import DaskExecutor

    flow = build([])

    @flow.task
    def independent() -> str:
        return "ran"

    result = flow.run({"source": "s"}, resources={"db": Connection()},
                      executor=DaskExecutor(dask_client), raise_on_failure=False)
    error = result.tasks["load"].error
    assert isinstance(error, SerializationError) and "load" in str(error)
    assert result.tasks["extract"].status is TaskStatus.COMPLETED
    assert result.tasks["independent"].status is TaskStatus.COMPLETED


def test_on_dask_a_picklable_resource_reaches_the_task(dask_client) -> None:
    from flowdsl import DaskExecutor

    flow = Flow("dask_resource")
    flow.task(lambda settings: settings["dsn"], id="use")
    result = flow.run(resources={"settings": {"dsn": "x"}}, executor=DaskExecutor(dask_client))
    assert result.results["use"] == "x"
