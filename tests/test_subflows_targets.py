"""DESIGN "Sub-flows" (flow.include) and "Running part of a flow" (targets=)."""

from typing import Any

import pytest

from flowdsl import (
    CycleError,
    DefinitionError,
    Flow,
    RunFailedError,
    RunStatus,
    UnknownDependencyError,
)


def ingest_flow() -> Flow:
    """A small reusable sub-flow: read a path, clean the rows, count them."""
    sub = Flow("ingest")

    @sub.task(produces=["rows"])
    def read(source):
        return {"rows": [line.strip() for line in source.split(",")]}

    @sub.task
    def clean(rows):
        return [row for row in rows if row]

    @sub.task
    def count(clean):
        return len(clean)

    @sub.task
    def sample(rows, size=1):
        return rows[:size]

    return sub


def test_include_copies_tasks_with_prefixed_ids_keys_and_a_gathering_task() -> None:
    sub = ingest_flow()
    flow = Flow("parent")

    @flow.task
    def raw_path():
        return "a, b,,c"

    flow.include(sub, prefix="ingest", inputs={"source": raw_path})

    @flow.task
    def report(ingest):
        return ingest

    plan = flow.compile()
    assert set(plan.order) == {"raw_path", "ingest.read", "ingest.clean", "ingest.count",
                               "ingest.sample", "ingest", "report"}
    assert plan["ingest.read"].produces == ("ingest.rows",)
    assert plan["ingest.read"].dependencies == ("raw_path",)
    assert set(plan["ingest"].dependencies) == {"ingest.count", "ingest.sample"}
    assert plan["ingest"].gathers and plan["ingest.clean"].included == ("ingest",)
    assert plan.inputs == ()
    result = flow.run()
    assert result.results["report"] == {"count": 3, "sample": ["a"]}
    assert result.context.shared_state["ingest.rows"] == ["a", "b", "", "c"]
    # the included flow is unchanged and still runs alone
    assert sub.task_ids == ("read", "clean", "count", "sample")
    assert sub.run({"source": "x"}).results["count"] == 1


def test_a_sub_flow_included_twice_with_different_prefixes() -> None:
    sub = ingest_flow()
    flow = Flow("twice")
    flow.include(sub, prefix="orders", inputs={"source": "key:orders_csv"})
    flow.include(sub, prefix="customers", inputs={"source": "customers_csv", "size": "key:n"})

    @flow.task
    def compare(orders, customers):
        return orders["count"], customers["count"], customers["sample"]

    plan = flow.compile()
    assert sorted(plan.inputs) == ["customers_csv", "orders_csv"]
    result = flow.run({"orders_csv": "1,2,3", "customers_csv": "x,y", "n": 2})
    assert result.results["compare"] == (3, 2, ["x", "y"])
    assert result.tasks["orders.clean"].status.value == "completed"


def test_unmapped_inputs_keep_their_names_and_a_parent_task_of_that_name_does_not_capture_them(
) -> None:
    sub = ingest_flow()
    flow = Flow("names")
    flow.task(id="size")(lambda: 99)  # a parent task named like the sub-flow's key `size`
    flow.include(sub, prefix="ingest")
    plan = flow.compile()
    assert plan.inputs == ("source",)
    assert "size" not in plan["ingest.sample"].dependencies
    result = flow.run({"source": "p,q", "size": 2})
    assert result.results["ingest.sample"] == ["p", "q"]


def test_depends_on_applies_to_the_sub_flows_roots() -> None:
    sub = ingest_flow()
    flow = Flow("after")
    order: list[str] = []
    flow.task(id="prepare")(lambda: order.append("prepare"))
    flow.include(sub, prefix="ingest", depends_on=["prepare"])
    plan = flow.compile()
    assert plan["ingest.read"].dependencies == ("prepare",)
    assert "prepare" not in plan["ingest.clean"].dependencies
    assert plan.order.index("prepare") < plan.order.index("ingest.read")


def test_nested_includes_prefix_twice() -> None:
    inner = Flow("inner")
    inner.task(id="make", produces=["value"])(lambda seed: {"value": seed * 2})
    inner.task(id="use")(lambda value: value + 1)
    middle = Flow("middle")
    middle.include(inner, prefix="in")
    outer = Flow("outer")
    outer.include(middle, prefix="mid", inputs={"seed": "key:start"})
    plan = outer.compile()
    assert set(plan.order) == {"mid.in.make", "mid.in.use", "mid.in", "mid"}
    assert plan["mid.in.make"].produces == ("mid.in.value",)
    result = outer.run({"start": 5})
    assert result.results["mid"] == {"in": {"use": 11}}


def test_the_copy_is_made_at_each_compile_of_the_parent() -> None:
    sub = Flow("sub")
    sub.task(id="a")(lambda: 1)
    flow = Flow("parent")
    flow.include(sub, prefix="s")
    assert flow.compile().order == ("s.a", "s")
    sub.task(id="b")(lambda a: a + 1)
    assert flow.compile().order == ("s.a", "s.b", "s")
    assert flow.run().results["s"] == {"b": 2}


def test_include_cycles_are_refused() -> None:
    a, b = Flow("a"), Flow("b")
    with pytest.raises(DefinitionError, match="cycle"):
        a.include(a, prefix="self")
    a.include(b, prefix="bee")
    with pytest.raises(DefinitionError) as excinfo:
        b.include(a, prefix="ay")
    assert "'a'" in str(excinfo.value) and "'b'" in str(excinfo.value)


def test_prefix_clashes_are_refused_by_include_or_compile() -> None:
    sub = ingest_flow()
    flow = Flow("clash")
    flow.task(id="ingest")(lambda: 1)
    with pytest.raises(DefinitionError, match="prefix 'ingest'"):
        flow.include(sub, prefix="ingest")
    flow.include(sub, prefix="load")
    with pytest.raises(DefinitionError, match="prefix 'load'"):
        flow.include(sub, prefix="load")
    flow.task(id="load")(lambda: 2)  # declared after the include
    with pytest.raises(DefinitionError, match="prefix 'load'"):
        flow.compile()
    with pytest.raises(DefinitionError, match="prefix"):
        Flow("x").include(sub, prefix="a.b")


def test_an_inputs_key_the_sub_flow_does_not_read_suggests_one() -> None:
    flow = Flow("typo")
    flow.include(ingest_flow(), prefix="ingest", inputs={"sorce": "key:path"})
    with pytest.raises(DefinitionError, match="did you mean 'source'"):
        flow.compile()


# == targets ==================================================================================
def report_flow(ran: list[str]) -> Flow:
    flow = Flow("reporting")

    @flow.task(produces=["sales"])
    def load_sales(region):
        ran.append("load_sales")
        return {"sales": [3, 4]}

    @flow.task
    def total(sales):
        ran.append("total")
        return sum(sales)

    @flow.task
    def forecast(sales, horizon):
        ran.append("forecast")
        return sales[-1] * horizon

    @flow.task
    def report(total):
        ran.append("report")
        return f"total {total}"

    return flow


def test_target_plan_holds_the_targets_and_their_ancestors() -> None:
    flow = report_flow([])
    plan = flow.compile(targets=["report"])
    assert plan.order == ("load_sales", "total", "report")
    assert plan.inputs == ("region",)  # forecast's `horizon` is not needed
    assert plan.targets == ("report",)
    assert [step.position for step in plan.steps] == [0, 1, 2]
    assert plan.children["total"] == ("report",)
    assert flow.compile(targets=["report"]) is plan  # compiled once, cached
    assert sorted(flow.compile().inputs) == ["horizon", "region"]


def test_run_with_targets_runs_only_what_they_need() -> None:
    ran: list[str] = []
    flow = report_flow(ran)
    result = flow.run({"region": "eu"}, targets=["report"])
    assert result.status is RunStatus.SUCCEEDED
    assert ran == ["load_sales", "total", "report"]
    assert set(result.tasks) == {"load_sales", "total", "report"}  # forecast absent
    assert result.summary["total_tasks"] == 3


def test_an_unknown_target_suggests_a_close_id_before_any_task() -> None:
    ran: list[str] = []
    flow = report_flow(ran)
    with pytest.raises(UnknownDependencyError, match="did you mean 'report'"):
        flow.run({"region": "eu", "horizon": 2}, targets=["reprt"])
    assert ran == []


def test_target_plan_is_recompiled_when_the_flow_changes() -> None:
    flow = report_flow([])
    before = flow.compile(targets=["total"])
    flow.task(id="audit")(lambda total: total)
    after = flow.compile(targets=["audit"])
    assert after.order == ("load_sales", "total", "audit")
    assert flow.compile(targets=["total"]) is not before


@pytest.mark.parametrize("targets", [[], [3]])
def test_malformed_targets_are_definition_errors(targets: Any) -> None:
    with pytest.raises(DefinitionError, match="targets"):
        report_flow([]).compile(targets=targets)


def test_targets_inside_an_included_flow() -> None:
    flow = Flow("parent")
    flow.include(ingest_flow(), prefix="ingest")
    flow.task(id="other")(lambda: 1)
    plan = flow.compile(targets=["ingest.count"])
    assert plan.order == ("ingest.read", "ingest.clean", "ingest.count")
    # an included producer's result holds its keys under both names (see include.Renamed)
    assert flow.run({"source": "a,b"}, targets=["ingest.count"]).results == {
        "ingest.read": {"rows": ["a", "b"], "ingest.rows": ["a", "b"]},
        "ingest.clean": ["a", "b"], "ingest.count": 2}


def test_an_included_producer_that_omits_its_key_names_the_prefixed_task() -> None:
    sub = Flow("sub")
    sub.task(id="read", produces=["rows"])(lambda: {"row": 1})
    flow = Flow("parent")
    flow.include(sub, prefix="in")
    try:
        result = flow.run()
    except RunFailedError as exc:  # raise_on_failure (issue 11) carries the result
        result = exc.result
    error = result.tasks["in.read"].error
    assert type(error).__name__ == "MissingOutputError"
    assert "'in.read'" in str(error) and "'rows'" in str(error)


def test_an_included_async_producer() -> None:
    sub = Flow("sub")

    @sub.task(produces=["rows"])
    async def read():
        return {"rows": [1]}

    flow = Flow("parent")
    flow.include(sub, prefix="in")
    @flow.task(bind={"rows": "key:in.rows"})
    def use(rows):
        return rows

    assert flow.run().results["use"] == [1]


def test_a_cycle_through_an_include_is_a_cycle_error() -> None:
    sub = Flow("sub")
    sub.task(id="a", produces=["out"])(lambda: {"out": 1})
    flow = Flow("parent")
    flow.task(id="feed")(lambda s: s)  # reads the gathered result of s...
    flow.include(sub, prefix="s", depends_on=["feed"])  # ...whose root waits for feed
    with pytest.raises(CycleError) as excinfo:
        flow.compile()
    assert set(excinfo.value.cycle) == {"feed", "s.a", "s"}


def test_included_handlers_pickle_and_fingerprint_by_the_sub_flows_code() -> None:
    import pickle

    from flowdsl.store.fingerprint import task_fingerprint

    def build(body: int) -> Any:
        sub = Flow("sub")
        if body == 1:
            sub.task(id="read", produces=["rows"])(_read_one)
        else:
            sub.task(id="read", produces=["rows"])(_read_two)
        flow = Flow("parent")
        flow.include(sub, prefix="in")
        return flow.compile()

    plan = build(1)
    for task in ("in.read", "in"):
        handler = pickle.loads(pickle.dumps(plan[task].handler))  # Dask ships handlers
        assert type(handler) is type(plan[task].handler)
    assert pickle.loads(pickle.dumps(plan["in.read"].handler))() == {"rows": 1, "in.rows": 1}
    assert pickle.loads(pickle.dumps(plan["in"].handler))(5) == {"read": 5}
    same = task_fingerprint(build(1)["in.read"], "json")
    assert task_fingerprint(plan["in.read"], "json") == same
    assert task_fingerprint(build(2)["in.read"], "json") != same


def _read_one():
    return {"rows": 1}


def _read_two():
    return {"rows": 2}


def test_a_target_run_with_a_store_is_a_run_of_its_own(tmp_path: Any) -> None:
    ran: list[str] = []
    flow = report_flow(ran)
    store = tmp_path / "runs.db"
    result = flow.run({"region": "eu"}, targets=["total"], store=store, run_id="part")
    assert result.status is RunStatus.SUCCEEDED and ran == ["load_sales", "total"]
    from flowdsl.store import SqliteStore

    opened = SqliteStore(store)
    try:
        record = opened.get_run("part")
    finally:
        opened.close()
    assert set(record["tasks"]) == {"load_sales", "total"}
    assert record["status"] == "succeeded"


def test_include_inputs_from_a_parent_task_result_and_requires_keys() -> None:
    sub = Flow("sub")
    sub.task(id="need", requires=["token"])(lambda task_input: task_input["token"])
    sub.task(id="use")(lambda source: source * 2)

    flow = Flow("parent")

    @flow.task
    def make_source():
        return 21

    flow.include(sub, prefix="s", inputs={"source": make_source, "token": "key:secret"})
    plan = flow.compile()
    assert plan["s.use"].dependencies == ("make_source",)
    assert plan["s.need"].requires == ("secret",)
    assert flow.run({"secret": "t0k"}).results["s"] == {"need": "t0k", "use": 42}

    wrong = Flow("wrong")
    wrong.task(id="make_token")(lambda: "x")
    wrong.include(sub, prefix="s", inputs={"token": "make_token", "source": "key:src"})
    with pytest.raises(DefinitionError, match="requires"):
        wrong.compile()


def test_a_seed_style_sub_flow_reads_its_own_names_in_task_input() -> None:
    sub = Flow("seed")

    async def load(task_input):
        return {"records": task_input["data_source"].split(",")}

    async def count(task_input):
        return len(task_input["load_result"]["records"])

    sub.add_task("load", "Load", load, context_requirements=["data_source"], max_retries=0)
    sub.add_task("count", "Count", count, dependencies=["load"], max_retries=0)
    outer = Flow("outer")
    middle = Flow("middle")
    middle.include(sub, prefix="inner")
    outer.include(middle, prefix="mid", inputs={"data_source": "key:csv"})
    result = outer.run({"csv": "a,b,c"})
    assert result.results["mid.inner.count"] == 3
    assert result.results["mid"] == {"inner": {"count": 3}}


def test_an_included_flows_pools_come_with_it_and_the_parents_sizes_win() -> None:
    sub = Flow("sub", pools={"db": 2, "api": 1})
    sub.task(id="query", pool="db")(lambda: 1)
    sub.task(id="call", pool="api")(lambda: 2)
    flow = Flow("parent", pools={"db": 5})
    flow.include(sub, prefix="s")
    plan = flow.compile()
    assert dict(plan.pools) == {"db": 5, "api": 1}
    assert plan["s.query"].pool == "db"
    assert flow.run().results["s"] == {"query": 1, "call": 2}


def _failing_report_flow(ran: list[str], fail: dict[str, bool]) -> Flow:
    flow = report_flow(ran)

    @flow.task
    def publish(report):
        ran.append("publish")
        if fail["publish"]:
            raise RuntimeError("printer jammed")
        return report

    return flow


def test_resuming_a_target_run_keeps_its_targets(tmp_path: Any) -> None:
    from flowdsl import ResumeError

    ran: list[str] = []
    fail = {"publish": True}
    flow = _failing_report_flow(ran, fail)
    store = tmp_path / "runs.db"
    first = flow.run({"region": "eu", "horizon": 2}, targets=["publish"], store=store,
                     run_id="part", raise_on_failure=False)
    assert first.status is RunStatus.FAILED and "forecast" not in ran
    with pytest.raises(ResumeError, match="targets"):
        flow.run(targets=["forecast"], store=store, resume="part")
    fail["publish"] = False
    ran.clear()
    resumed = flow.run(store=store, resume="part")  # no targets=: the stored ones
    assert resumed.status is RunStatus.SUCCEEDED
    assert ran == ["publish"] and set(resumed.tasks) == {"load_sales", "total", "report",
                                                          "publish"}
    again = flow.run({"region": "eu", "horizon": 2}, store=store, run_id="whole")
    assert again.status is RunStatus.SUCCEEDED
    with pytest.raises(ResumeError, match="whole flow"):
        flow.run(targets=["total"], store=store, resume="whole")


def test_a_store_of_schema_1_migrates_forward_and_its_runs_resume(tmp_path: Any) -> None:
    import sqlite3

    from flowdsl.store import SqliteStore
    from flowdsl.store.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # what flowdsl wrote before the targets column
        for statement in MIGRATIONS[1]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
    ran: list[str] = []
    fail = {"publish": True}
    flow = _failing_report_flow(ran, fail)
    first = flow.run({"region": "eu", "horizon": 2}, store=path, run_id="old",
                     raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT targets FROM runs").fetchone() == (None,)
    fail["publish"] = False
    assert flow.run(store=path, resume="old").status is RunStatus.SUCCEEDED
    SqliteStore(path).close()
