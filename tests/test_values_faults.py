"""Values that look storable but used to stop a run with a store (issue 11, findings 4, 8, 10):
deep nesting, lone surrogates, NaN inputs, time zones."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowdsl import Flow, RunStatus, SerializationError, TaskContext, TaskStatus
from flowdsl.store.codec import MAX_DEPTH, encode_for_hash

ROOT = Path(__file__).resolve().parent.parent


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def fails_once(flow: Flow, fail: dict[str, bool]) -> None:
    """Add a task that fails while ``fail["on"]``: the run can be resumed."""

    @flow.task
    def fragile() -> str:
        if fail["on"]:
            raise RuntimeError("once")
        return "done"


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_too_deep_result_fails_its_task_and_leaves_the_rest_running(
        run_flow, tmp_path, depth) -> None:
    store, fail = tmp_path / "runs.db", {"on": True}
    flow = Flow("deep")
    flow.task(lambda: nested(depth), id="deep")

    @flow.task(produces=["deep_key"])
    def deep_write():
        return {"deep_key": nested(depth)}

    @flow.task
    def shallow():
        return nested(MAX_DEPTH - 1)

    fails_once(flow, fail)
    result = run_flow(flow, store=store, raise_on_failure=False)
    for task in ("deep", "deep_write"):
        error = result.tasks[task].error
        assert isinstance(error, SerializationError), error
        assert repr(task) in str(error) and "deep" in str(error)  # Dask: pickle refuses it
        assert result.tasks[task].attempts == 1
    assert result.tasks["shallow"].status is TaskStatus.COMPLETED
    fail["on"] = False
    resumed = run_flow(flow, store=store, resume=result.run_id, raise_on_failure=False)
    assert resumed.tasks["shallow"].reason == "restored from the run store"
    assert resumed.results["shallow"] == nested(MAX_DEPTH - 1)
    assert resumed.tasks["fragile"].status is TaskStatus.COMPLETED
    assert isinstance(resumed.tasks["deep"].error, SerializationError)


def test_lone_surrogates_round_trip_through_the_store(run_flow, store_url) -> None:
    fail = {"on": True}
    name = os.fsdecode(b"caf\xe9.txt")  # a non-UTF-8 file name: 'caf\udce9.txt'
    flow = Flow("surrogates")

    @flow.task
    def listing(context: TaskContext):
        context.shared_state["last"] = name
        return {name: [name, ("\ud800", b"\xff")]}

    fails_once(flow, fail)
    first = run_flow(flow, {"path": name}, store=store_url, raise_on_failure=False)
    assert first.tasks["listing"].status is TaskStatus.COMPLETED
    fail["on"] = False
    resumed = run_flow(flow, store=store_url, resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.tasks["listing"].reason == "restored from the run store"
    assert resumed.results["listing"] == {name: [name, ("\ud800", b"\xff")]}
    assert resumed.context.shared_state["last"] == name
    assert resumed.context.data["path"] == name


def test_a_nan_input_does_not_block_resume(run_flow, store_url) -> None:
    fail = {"on": True}
    flow = Flow("nan_input")
    flow.task(lambda x: x, id="echo")
    fails_once(flow, fail)
    inputs = {"x": [math.nan, {"y": float("nan")}]}
    first = run_flow(flow, inputs, store=store_url, raise_on_failure=False)
    fail["on"] = False
    again = {"x": [float("nan"), {"y": math.nan}]}  # other NaN objects, equal encodings
    resumed = run_flow(flow, again, store=store_url, resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.tasks["echo"].reason == "restored from the run store"


def test_encode_for_hash_is_canonical() -> None:
    assert encode_for_hash({"b": 1, "a": math.nan}) == encode_for_hash({"a": math.nan, "b": 1})
    assert encode_for_hash((1, 2)) != encode_for_hash([1, 2])
    assert encode_for_hash({1: "a"}) != encode_for_hash({"1": "a"})
    with pytest.raises(SerializationError):
        encode_for_hash(object())


def test_zoneinfo_datetimes_keep_their_zone(run_flow, store_url) -> None:
    fail = {"on": True}
    paris = ZoneInfo("Europe/Paris")
    before_dst = dt.datetime(2024, 3, 30, 12, 0, tzinfo=paris)
    ambiguous = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=paris)
    flow = Flow("zones")
    flow.task(lambda: {"before": before_dst, "ambiguous": ambiguous,
                       "fixed": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}, id="times")
    fails_once(flow, fail)
    first = run_flow(flow, {"since": before_dst}, store=store_url, raise_on_failure=False)
    fail["on"] = False
    resumed = run_flow(flow, store=store_url, resume=first.run_id)
    times = resumed.results["times"]
    assert times["before"].tzinfo is paris
    day = dt.timedelta(days=1)
    assert (times["before"] + day).utcoffset() == dt.timedelta(hours=2)  # DST applied
    assert times["ambiguous"].fold == 1
    assert times["ambiguous"].utcoffset() == ambiguous.utcoffset()
    assert times["fixed"].tzinfo == dt.timezone.utc
    assert resumed.context.data["since"].tzinfo is paris


@pytest.mark.slow
def test_cli_resume_with_set_nan_is_not_refused(tmp_path: Path) -> None:
    (tmp_path / "nanflow.py").write_text(textwrap.dedent("""
        import os
        from flowdsl import Flow

        flow = Flow("nanflow")

        @flow.task
        def use(x):
            return x

        @flow.task
        def fragile(use):
            if not os.path.exists("ok"):
                raise RuntimeError("not yet")
            return 1
    """))

    def flowdsl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowdsl", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    first = flowdsl("run", "nanflow.py", "--set", "x=NaN", "--store", "runs.db",
                    "--run-id", "r1")
    assert first.returncode == 1, first.stderr
    (tmp_path / "ok").write_text("")
    resumed = flowdsl("run", "nanflow.py", "--set", "x=NaN", "--store", "runs.db",
                      "--resume", "r1")
    assert resumed.returncode == 0, resumed.stderr
    assert "restored" in resumed.stdout


def test_an_error_text_with_a_lone_surrogate_is_stored_escaped(run_flow, store_url) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    flow = Flow("surrogate_error")

    @flow.task
    def bad():
        raise ValueError("cannot read " + name)

    @flow.task
    def independent() -> int:
        return 1

    result = run_flow(flow, store=store_url, raise_on_failure=False)
    assert str(result.tasks["bad"].error) == "cannot read " + name  # raised as it was
    assert result.tasks["independent"].status is TaskStatus.COMPLETED
    from flowdsl.store import open_store

    store = open_store(store_url)
    try:
        stored = store.get_run(result.run_id)["tasks"]["bad"]
    finally:
        store.close()
    assert stored["error"] == "ValueError: cannot read caf\\udce9.txt"
    assert "caf\\udce9.txt" in stored["traceback"]


def test_a_run_id_that_is_not_text_is_refused() -> None:
    flow = Flow("ids")
    flow.task(lambda: 1, id="one")
    with pytest.raises(ValueError, match="run_id"):
        flow.run(run_id=os.fsdecode(b"r\xff"))
