"""Typed values in the run store (DESIGN "Values, resources and caching"): dataclasses, Enums,
attrs classes, pydantic models, numpy arrays and scalars, pandas DataFrames and Series stored
without pickle, decoded only into the types the flow's code declares."""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("pydantic")

from flowdsl import (  # noqa: E402
    DefinitionError,
    Flow,
    RunStatus,
    SerializationError,
    StoreError,
    TaskContext,
    TaskStatus,
)
from flowdsl.store import SqliteStore  # noqa: E402
from tests.flows.typed_values import Color, Order, Point, Reading, frame  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


KINDS = ["dataclass", "enum", "attrs", "pydantic", "ndarray", "dataframe", "series",
         "numpy_scalar", "zoneinfo", "surrogate", "annotated"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_typed_value_round_trips_through_a_fresh_process(tmp_path: Path, kind: str) -> None:
    store = tmp_path / "runs.db"
    first = python("-m", "tests.flows.typed_values", kind, str(store), "first")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.split()[-1]
    assert SqliteStore(store).get_run(run_id)["tasks"]["make"]["status"] == "completed"
    resumed = python("-m", "tests.flows.typed_values", kind, str(store), "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    verdict, reason = resumed.stdout.strip().splitlines()
    assert verdict.startswith("SAME"), verdict
    assert reason == "restored from the run store"
    assert sql(store, "SELECT COUNT(*) FROM tasks WHERE codec = 'pickle'") == [(0,)]


def sql(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


# -- declared types --------------------------------------------------------------------------

@dataclasses.dataclass
class Box:
    orders: dict[str, Optional[Order]]


def test_types_are_declared_by_flow_types_return_annotations_and_their_fields() -> None:
    flow = Flow("declared", types=[Reading])

    @flow.task
    def boxed() -> list[Box]:
        return []

    @flow.task
    def plain() -> int:
        return 1

    declared = flow.compile().types
    name = f"{Box.__module__}.{Box.__qualname__}"
    assert declared[name] is Box
    for cls in (Reading, Color, Point, Order):  # Reading -> Color, Point through its fields
        assert declared[f"{cls.__module__}.{cls.__qualname__}"] is cls
    assert all(not k.startswith("builtins.") for k in declared)


def test_an_unresolvable_return_annotation_is_a_definition_error_naming_the_task() -> None:
    flow = Flow("unresolvable")

    def make() -> "NoSuchType":  # type: ignore[name-defined]  # noqa: F821
        return None

    flow.task(id="maker")(make)
    with pytest.raises(DefinitionError, match=r"'maker'.*NoSuchType"):
        flow.compile()
    with pytest.raises(DefinitionError, match="maker"):
        flow.run()


def test_flow_types_refuses_a_type_the_store_cannot_keep() -> None:
    with pytest.raises(DefinitionError, match="complex"):
        Flow("bad", types=[complex])


def test_an_undeclared_typed_result_fails_its_task_naming_the_type(run_flow, tmp_path) -> None:
    flow = Flow("undeclared")

    @flow.task
    def make():  # no annotation, no Flow(types=...)
        return Point(1, 2)

    @flow.task
    def independent() -> str:
        return "ran"

    result = run_flow(flow, store=tmp_path / "runs.db", raise_on_failure=False)
    error = result.tasks["make"].error
    assert isinstance(error, SerializationError)
    assert "make" in str(error) and "Point" in str(error) and "types=" in str(error)
    assert result.tasks["independent"].status is TaskStatus.COMPLETED


def test_without_a_store_typed_values_need_no_declaration(run_flow) -> None:
    flow = Flow("nostore")
    flow.task(lambda: Point(1, 2), id="make")
    assert run_flow(flow).results["make"] == Point(1, 2)


# -- typed values anywhere in a stored value ---------------------------------------------------

def test_typed_values_in_inputs_produced_keys_and_writes_are_restored(run_flow, tmp_path) -> None:
    store = tmp_path / "runs.db"
    flow = Flow("anywhere", types=[Point, Color, pd.DataFrame, np.ndarray])
    fail = {"on": True}

    @flow.task(produces=["table"])
    def load(origin: Point, context: TaskContext):
        context.shared_state["color"] = Color.BLUE
        context.shared_state["grid"] = np.eye(2)
        return {"table": frame(), "origin": origin}

    @flow.task
    def report(table, color=None):
        if fail["on"]:
            raise RuntimeError("once")
        return {"rows": int(table["n"].sum()), "color": color}

    first = run_flow(flow, {"origin": Point(3, 4)}, store=store, raise_on_failure=False)
    assert first.tasks["load"].status is TaskStatus.COMPLETED
    fail["on"] = False
    resumed = run_flow(flow, store=store, resume=first.run_id)
    assert resumed.tasks["load"].reason == "restored from the run store"
    pd.testing.assert_frame_equal(resumed.results["load"]["table"], frame())
    assert resumed.results["load"]["origin"] == Point(3, 4)
    assert resumed.context.shared_state["color"] is Color.BLUE
    assert np.array_equal(resumed.context.shared_state["grid"], np.eye(2))
    assert resumed.results["report"] == {"rows": 4, "color": Color.BLUE}
    assert resumed.context.data["origin"] == Point(3, 4)


@pytest.mark.parametrize("bad, what", [
    (lambda: pd.DataFrame({1: [1, 2]}), "column names must be strings"),
    (lambda: pd.DataFrame({"o": [object(), object()]}), "o"),
])
def test_a_frame_the_codec_cannot_store_fails_the_task_naming_it(run_flow, tmp_path, bad, what):
    flow = Flow("badframe", types=[pd.DataFrame])

    @flow.task
    def make():
        return {"frame": bad()}

    @flow.task
    def independent() -> str:
        return "ran"

    result = run_flow(flow, store=tmp_path / "runs.db", raise_on_failure=False)
    error = result.tasks["make"].error
    assert isinstance(error, SerializationError)
    assert "make" in str(error) and "the result['frame']" in str(error)
    assert "DataFrame" in str(error) and what in str(error)
    assert result.tasks["make"].attempts == 1
    assert result.tasks["independent"].status is TaskStatus.COMPLETED


def test_numpy_scalars_in_results_keep_their_type(run_flow, tmp_path) -> None:
    store = tmp_path / "runs.db"
    flow = Flow("scalars")
    fail = {"on": True}

    @flow.task
    def stats():
        values = np.array([1, 2, 3])
        return {"sum": values.sum(), "mean": values.mean(), "any": values.any()}

    @flow.task
    def after(stats):
        if fail["on"]:
            raise RuntimeError("once")

    first = run_flow(flow, store=store, raise_on_failure=False)
    fail["on"] = False
    restored = run_flow(flow, store=store, resume=first.run_id).results["stats"]
    assert restored == {"sum": 6, "mean": 2.0, "any": True}
    assert [type(v) for v in restored.values()] == [np.int64, np.float64, np.bool_]


# -- history never imports -------------------------------------------------------------------

PLANTED = '''
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("planted module was imported")

class Evil:
    pass
'''


def _planted_run(tmp_path: Path) -> tuple[Path, str, Flow]:
    """A run whose completed task's stored result names a type nobody declared."""
    (tmp_path / "planted_evil.py").write_text(PLANTED)
    store = tmp_path / "runs.db"
    flow = Flow("planted", types=[Point])
    fail = {"on": True}

    @flow.task
    def make():
        return {"p": Point(1, 2)}

    @flow.task
    def after(make):
        if fail["on"]:
            raise RuntimeError("once")
        return make

    first = flow.run(store=store, raise_on_failure=False)
    fail["on"] = False
    node = {"$flowdsl": "typed", "t": "planted_evil.Evil", "k": "dataclass", "v": {}}
    conn = sqlite3.connect(store)
    with conn:
        conn.execute("UPDATE tasks SET result = ? WHERE task_id = 'make'",
                     (json.dumps({"p": node}),))
    conn.close()
    return store, first.run_id, flow


def test_a_planted_undeclared_type_is_a_store_error_and_imports_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id, flow = _planted_run(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, were anything to import it
    with pytest.raises(StoreError, match=r"planted_evil\.Evil") as caught:
        flow.run(store=store, resume=run_id)
    assert "make" in str(caught.value) and "declare" in str(caught.value)
    assert "planted_evil" not in sys.modules
    assert not (tmp_path / "IMPORTED").exists()
    assert SqliteStore(store).get_run(run_id)["status"] == RunStatus.FAILED.value


@pytest.mark.slow
def test_show_describes_typed_values_and_never_imports_them(tmp_path: Path) -> None:
    store, run_id, _ = _planted_run(tmp_path)
    shown = subprocess.run([sys.executable, "-m", "flowdsl", "show", run_id, "--store",
                            str(store), "--json"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, env={"PYTHONPATH": f"{tmp_path}:{ROOT}",
                                                       "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0, shown.stderr
    assert "<planted_evil.Evil value, 2 bytes>" in shown.stdout
    assert not (tmp_path / "IMPORTED").exists()


def test_listing_describes_a_frame_by_type_and_size(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    flow = Flow("described", types=[pd.DataFrame])
    flow.task(lambda: frame(), id="make")
    result = flow.run(store=store)
    shown = SqliteStore(store).get_run(result.run_id)["tasks"]["make"]["result"]
    assert shown.startswith(f"<{pd.DataFrame.__module__}.DataFrame value, ")
    assert shown.endswith(" bytes>") and int(shown.split()[-2]) > 100


# -- optional libraries stay optional ---------------------------------------------------------

def test_import_flowdsl_and_a_plain_store_run_import_no_data_library(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        import flowdsl
        from flowdsl.store import codec
        flow = flowdsl.Flow("plain")
        flow.task(lambda: {{"a": [1, 2.5]}}, id="a")
        flow.run(store={str(tmp_path / 'runs.db')!r})
        print(sorted(m for m in ("numpy", "pandas", "pyarrow", "pydantic") if m in sys.modules))
    """)
    out = python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_enum_subclass_of_int_keeps_its_type(tmp_path: Path) -> None:
    class Level(enum.IntEnum):
        LOW = 1

    flow = Flow("intenum", types=[Level])
    fail = {"on": True}
    flow.task(lambda: [Level.LOW, 1], id="make")

    @flow.task
    def after(make):
        if fail["on"]:
            raise RuntimeError("once")

    first = flow.run(store=tmp_path / "r.db", raise_on_failure=False)
    fail["on"] = False
    restored = flow.run(store=tmp_path / "r.db", resume=first.run_id).results["make"]
    assert [type(v) for v in restored] == [Level, int]


def test_an_included_flow_brings_its_declared_types() -> None:
    sub = Flow("sub", types=[Point])
    sub.task(lambda: Point(1, 2), id="make")
    parent = Flow("parent")
    parent.include(sub, prefix="ingest")
    assert Point in parent.compile().types.values()


def test_a_pickle_flow_stores_plain_inputs_as_json_so_showing_shows_them(tmp_path: Path) -> None:
    store, fail = tmp_path / "runs.db", {"on": True}
    flow = Flow("pickled_inputs", serializer="pickle")
    flow.task(lambda source: {"from": source}, id="load")

    @flow.task
    def after(load):
        if fail["on"]:
            raise RuntimeError("once")

    first = flow.run({"source": "orders.csv"}, store=store, raise_on_failure=False)
    assert SqliteStore(store).get_run(first.run_id)["inputs"] == {"source": "orders.csv"}
    fail["on"] = False
    resumed = flow.run(store=store, resume=first.run_id)
    assert resumed.context.data["source"] == "orders.csv"
    assert resumed.tasks["load"].reason == "restored from the run store"
    other = flow.run({"source": "x", "blob": Reading("s", Color.RED)}, store=store,
                     raise_on_failure=False)
    assert SqliteStore(store).get_run(other.run_id)["inputs"].startswith("<pickle value")


def test_a_pydantic_model_with_pydantic_types_round_trips(tmp_path: Path) -> None:
    import pydantic

    class Link(pydantic.BaseModel):
        url: pydantic.HttpUrl
        hits: int

    flow = Flow("links", types=[Link])
    fail = {"on": True}
    flow.task(lambda: Link(url="https://example.org/a", hits=3), id="make")

    @flow.task
    def after(make):
        if fail["on"]:
            raise RuntimeError("once")

    first = flow.run(store=tmp_path / "r.db", raise_on_failure=False)
    fail["on"] = False
    restored = flow.run(store=tmp_path / "r.db", resume=first.run_id).results["make"]
    assert restored == Link(url="https://example.org/a", hits=3)


def test_pandas_scalars_need_no_declaration(tmp_path: Path) -> None:
    values = {"last": pd.Timestamp("2024-03-30 12:00:00.123456789", tz="Europe/Paris"),
              "first": pd.Timestamp("2024-01-01"), "gap": pd.Timedelta("1 days 1ns"),
              "none": pd.NaT, "offset": pd.Timestamp("2024-01-01T10:00+05:30")}
    flow = Flow("pandas_scalars")
    fail = {"on": True}
    flow.task(lambda: values, id="make")

    @flow.task
    def after(make):
        if fail["on"]:
            raise RuntimeError("once")

    first = flow.run(store=tmp_path / "r.db", raise_on_failure=False)
    fail["on"] = False
    restored = flow.run(store=tmp_path / "r.db", resume=first.run_id).results["make"]
    assert restored == values
    assert str(restored["last"].tz) == "Europe/Paris" and restored["none"] is pd.NaT
    assert restored["offset"].utcoffset() == values["offset"].utcoffset()
