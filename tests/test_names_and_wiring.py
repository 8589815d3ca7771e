"""DESIGN "Names are edges", "Wiring at the call site: bind=", and the declaration side of
"Mapping" and "Conditions and trigger rules" (what the plan records; the runtime executes it)."""

from typing import Any

import pytest

from flowdsl import (
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    Flow,
    MissingInputError,
)
from flowdsl.store.fingerprint import task_fingerprint


# == Names are edges ==========================================================================
@pytest.mark.parametrize("reader_first", [True, False])
def test_inferred_edges_do_not_depend_on_declaration_order(reader_first: bool) -> None:
    flow = Flow("edges")

    def load():
        return {"rows": [3, 1, 2]}

    def tidy(rows):
        return {"clean": sorted(rows)}

    def report(clean, rows):
        return f"{len(rows)} rows, first {clean[0]}"

    declared = [(report, {}), (tidy, {"produces": ["clean"]}), (load, {"produces": ["rows"]})]
    if not reader_first:
        declared.reverse()
    for fn, options in declared:
        flow.task(**options)(fn)

    plan = flow.compile()
    assert plan.order == ("load", "tidy", "report")
    assert dict(plan["tidy"].inferred) == {"load": "rows"}
    # report reads rows too, but load is already its ancestor through tidy: no extra edge
    assert plan["report"].dependencies == ("tidy",)
    assert dict(plan["report"].producers) == {"clean": "tidy", "rows": "load"}
    assert flow.run().results["report"] == "3 rows, first 1"


def test_a_declared_dependency_is_not_marked_inferred() -> None:
    flow = Flow("declared")
    flow.task(id="load", produces=["rows"])(lambda: {"rows": [1]})

    @flow.task(depends_on=["load"])
    def count(rows):
        return len(rows)

    step = flow.compile()["count"]
    assert step.dependencies == ("load",)
    assert dict(step.inferred) == {}


def test_several_producers_none_upstream_names_key_reader_producers_and_fix() -> None:
    flow = Flow("ambiguous")
    flow.task(id="from_db", produces=["rows"])(lambda: {"rows": [1]})
    flow.task(id="from_csv", produces=["rows"], depends_on=["from_db"])(lambda: {"rows": [2]})

    @flow.task
    def report(rows):
        return rows

    # report reads rows; two tasks produce it and neither is report's ancestor
    with pytest.raises(DefinitionError) as excinfo:
        flow.compile()
    message = str(excinfo.value)
    for part in ("'rows'", "'report'", "'from_db'", "'from_csv'", "depends_on=["):
        assert part in message, (part, message)


def test_unordered_producers_read_by_a_task_name_the_reader_too() -> None:
    flow = Flow("ambiguous")
    flow.task(id="a", produces=["k"])(lambda: {"k": 1})
    flow.task(id="b", produces=["k"])(lambda: {"k": 2})
    flow.task(id="reader")(lambda k: k)
    with pytest.raises(DefinitionError, match="'reader'.*'k'|'k'.*'reader'"):
        flow.compile()


def test_a_task_reading_the_key_it_produces_infers_no_edge_to_itself() -> None:
    flow = Flow("self")

    @flow.task(produces=["n"])
    def bump(n):
        return {"n": n + 1}

    plan = flow.compile()
    assert plan["bump"].dependencies == ()
    assert plan.inputs == ("n",)


def test_a_cycle_made_by_an_inferred_edge_names_the_key() -> None:
    flow = Flow("loop")
    flow.task(id="a", produces=["x"])(lambda y: {"x": y})
    flow.task(id="b", produces=["y"])(lambda x: {"y": x})
    with pytest.raises(CycleError) as excinfo:
        flow.compile()
    message = str(excinfo.value)
    assert "inferred from key 'x'" in message and "inferred from key 'y'" in message
    assert set(excinfo.value.cycle) == {"a", "b"}


def test_no_producer_leaves_the_key_an_input_of_the_flow() -> None:
    flow = Flow("inputs")
    flow.task(id="read")(lambda source: source)
    assert flow.compile().inputs == ("source",)
    assert flow.run({"source": "x.csv"}).results["read"] == "x.csv"


# == bind= ====================================================================================
def test_bind_a_parameter_to_a_task_result_and_a_context_key() -> None:
    flow = Flow("bind")

    @flow.task
    def fetch_orders():
        return [1, 2, 3]

    @flow.task(produces=["limit_value"])
    def settings():
        return {"limit_value": 2}

    @flow.task(bind={"items": fetch_orders, "limit": "key:limit_value", "label": "key:title"})
    def head(items, limit, label="untitled"):
        return label, items[:limit]

    plan = flow.compile()
    assert set(plan["head"].dependencies) == {"fetch_orders", "settings"}
    assert dict(plan["head"].inferred) == {"settings": "limit_value"}
    assert plan.inputs == ()  # `title` has the parameter's default
    assert flow.run().results["head"] == ("untitled", [1, 2])
    assert flow.run({"title": "top"}).results["head"] == ("top", [1, 2])


def test_bind_by_task_id_wins_over_a_same_named_task() -> None:
    flow = Flow("bind")
    flow.task(id="a")(lambda: "A")
    flow.task(id="b")(lambda: "B")

    @flow.task(bind={"a": "b"})
    def show(a):
        return a

    plan = flow.compile()
    assert plan["show"].dependencies == ("b",)
    assert flow.run().results["show"] == "B"


def test_bind_keyword_only_parameter() -> None:
    flow = Flow("bind")
    flow.task(id="numbers")(lambda: [1, 2])

    @flow.task(bind={"values": "numbers"})
    def total(*, values):
        return sum(values)

    assert flow.run().results["total"] == 3


def test_bind_a_parameter_the_handler_lacks_suggests_the_close_one() -> None:
    flow = Flow("bind")
    with pytest.raises(DefinitionError) as excinfo:
        flow.task(bind={"itmes": "key:x"})(lambda items: items)
    message = str(excinfo.value)
    assert "'itmes'" in message and "did you mean 'items'?" in message


def test_bind_to_an_unknown_task_suggests_the_close_one_before_any_task() -> None:
    flow = Flow("bind")
    ran: list[str] = []
    flow.task(id="fetch_orders")(lambda: ran.append("fetch"))
    flow.task(id="head", bind={"items": "fetch_order"})(lambda items: ran.append("head"))
    with pytest.raises(DefinitionError) as excinfo:
        flow.run()
    message = str(excinfo.value)
    assert "'head'" in message and "'fetch_order'" in message
    assert "did you mean 'fetch_orders'?" in message
    assert ran == []


@pytest.mark.parametrize("source", [3, None, "", "key:"])
def test_bind_refuses_a_source_that_is_not_a_task_or_key(source: Any) -> None:
    with pytest.raises(DefinitionError, match="bind"):
        Flow("bind").task(bind={"x": source})(lambda x: x)


# == map_over=, run_if=, trigger= (declaration and plan) ======================================
def test_map_over_is_recorded_with_the_mapped_positions() -> None:
    flow = Flow("map")
    flow.task(id="files")(lambda: ["a", "b"])

    @flow.task(map_over=("path", "size"), bind={"path": "files"})
    def parse(path, mode, *, size):
        return path

    step = flow.compile()["parse"]
    assert step.map_over == ("path", "size")
    assert step.map_positions == (0, "size")  # path: args[0]; size is keyword-only
    args, kwargs, _ = step.bind(_FakeContext({"files": ["a"]}, {"mode": "r", "size": [1]}))
    assert args[step.map_positions[0]] == ["a"] and kwargs[step.map_positions[1]] == [1]
    assert flow.compile()["files"].map_over == ()


@pytest.mark.parametrize("map_over", ["pth", ("path", "sizes")])
def test_map_over_a_missing_parameter_is_a_definition_error(map_over: Any) -> None:
    with pytest.raises(DefinitionError) as excinfo:
        Flow("map").task(id="parse", map_over=map_over)(lambda path, size: path)
    message = str(excinfo.value)
    assert "'parse'" in message and "map_over" in message and "did you mean" in message


@pytest.mark.parametrize("map_over", ["", 3, (), ("a", "a")])
def test_map_over_refuses_malformed_values(map_over: Any) -> None:
    with pytest.raises(DefinitionError, match="map_over"):
        Flow("map").task(id="t", map_over=map_over)(lambda a: a)


def test_run_if_parameters_become_dependencies_and_inputs() -> None:
    flow = Flow("cond")
    flow.task(id="check", produces=["healthy"])(lambda: {"healthy": True})
    flow.task(id="size")(lambda: 10)

    def big_enough(size, healthy, mode, threshold=5):
        return healthy and size > threshold and mode == "full"

    @flow.task(run_if=big_enough, bind={"n": "size"})
    def publish(n):
        return n

    plan = flow.compile()
    step = plan["publish"]
    assert set(step.dependencies) == {"size", "check"}
    assert dict(step.inferred) == {"check": "healthy"}
    assert step.run_if is big_enough
    assert plan.inputs == ("mode",)
    assert plan.input_readers["mode"] == ("publish",)
    args, kwargs, reads = step.condition(
        _FakeContext({"size": 10, "check": {"healthy": True}}, {"mode": "full"}))
    assert big_enough(*args, **kwargs) is True
    assert reads == {"healthy": True, "mode": "full", "threshold": 5}


@pytest.mark.parametrize("predicate", [lambda *flags: True, lambda **flags: True,
                                       lambda task_input: True])
def test_run_if_with_an_unbindable_parameter_is_a_definition_error(predicate: Any) -> None:
    with pytest.raises(DefinitionError) as excinfo:
        Flow("cond").task(id="publish", run_if=predicate)(lambda: 1)
    assert "'publish'" in str(excinfo.value) and "run_if" in str(excinfo.value)


def test_run_if_must_be_callable() -> None:
    with pytest.raises(DefinitionError, match="run_if"):
        Flow("cond").task(id="t", run_if=True)(lambda: 1)


def test_trigger_values_and_an_unknown_one() -> None:
    flow = Flow("trigger")
    flow.task(id="work")(lambda: 1)
    for trigger in ("all_succeeded", "none_failed", "all_done"):
        flow.task(id=f"after_{trigger}", trigger=trigger, depends_on=["work"])(lambda: 1)
    plan = flow.compile()
    assert plan["work"].trigger == "all_succeeded"
    assert plan["after_all_done"].trigger == "all_done"
    with pytest.raises(DefinitionError) as excinfo:
        flow.task(id="cleanup", trigger="all_done_")(lambda: 1)
    message = str(excinfo.value)
    assert "'cleanup'" in message and "'all_done_'" in message and "did you mean 'all_done'" in message


def test_a_non_default_trigger_binds_an_incomplete_dependency_to_the_default() -> None:
    flow = Flow("trigger")
    flow.task(id="load", produces=["rows"])(lambda: {"rows": [1]})
    flow.task(id="stats")(lambda: 3)

    @flow.task(trigger="all_done", depends_on=["load"])
    def cleanup(stats, rows=(), note=None):
        return stats, rows

    step = flow.compile()["cleanup"]
    args, _, reads = step.bind(_FakeContext({}, {}))  # neither upstream completed
    assert args == (None, (), None)
    args, _, _ = step.bind(_FakeContext({"stats": 3, "load": {"rows": [1]}}, {}))
    assert args == (3, [1], None)


def test_condition_and_mapping_change_the_fingerprint() -> None:
    def build(**options: Any) -> Any:
        flow = Flow("fp")
        flow.task(id="items")(lambda: [1])
        flow.task(id="each", **options)(lambda items: items)
        return flow.compile()["each"]

    plain = task_fingerprint(build(), "json")
    assert task_fingerprint(build(), "json") == plain
    variants = [
        task_fingerprint(build(run_if=lambda items: True), "json"),
        task_fingerprint(build(run_if=lambda items: False), "json"),
        task_fingerprint(build(map_over="items"), "json"),
        task_fingerprint(build(trigger="all_done"), "json"),
    ]
    assert len({plain, *variants}) == 5


# == A newcomer's first hour ==================================================================
def test_missing_input_suggests_a_close_task_and_reminds_of_produces() -> None:
    flow = Flow("typo")
    ran: list[str] = []
    flow.task(id="extract")(lambda: ran.append("extract") or [1])

    @flow.task
    def load(extrct):
        ran.append("load")

    with pytest.raises(MissingInputError) as excinfo:
        flow.run()
    message = str(excinfo.value)
    assert "did you mean task 'extract'?" in message
    assert "produces=['extrct']" in message
    assert ran == []


def test_redefining_a_function_replaces_its_task() -> None:
    flow = Flow("notebook")
    namespace: dict[str, Any] = {}
    cell = "@flow.task(priority={p})\ndef extract():\n    return {p}\n"
    for p in (3, 2):  # the same cell, run twice: a new function with the same qualname
        exec(compile(cell.format(p=p), "<cell>", "exec"), {"flow": flow}, namespace)
    flow.task(id="report")(lambda extract: extract * 10)
    assert flow.compile()["extract"].priority == 2
    assert flow.task_ids == ("extract", "report")
    exec(compile(cell.format(p=4), "<cell>", "exec"), {"flow": flow}, namespace)
    assert flow.compile()["extract"].priority == 4  # recompiled
    assert flow.run().results == {"extract": 4, "report": 40}


def test_a_different_function_under_a_taken_id_is_still_a_duplicate() -> None:
    flow = Flow("notebook")

    @flow.task
    def extract():
        return 1

    def other():
        return 2

    flow.task(id="extract")(other)
    with pytest.raises(DuplicateTaskError, match="'extract'"):
        flow.compile()


class _FakeContext:
    """Just what a binder reads: results by task id, shared state, initial data."""

    def __init__(self, results: dict[str, Any], data: dict[str, Any]) -> None:
        self.results = results
        self.shared_state: dict[str, Any] = {}
        self.data = data


def test_the_spec_records_the_second_wave_keywords_as_given() -> None:
    flow = Flow("spec")
    flow.task(id="files")(lambda: ["a"])

    def nonempty(files):
        return bool(files)

    @flow.task(bind={"path": "files", "mode": "key:open_mode"}, map_over="path",
               run_if=nonempty, trigger="none_failed")
    def parse(path, mode="r"):
        return path

    spec = flow.spec(parse)
    assert spec.bind == (("path", "files"), ("mode", "key:open_mode"))
    assert spec.map_over == ("path",)
    assert spec.run_if is nonempty and [p.name for p in spec.run_if_params] == ["files"]
    assert spec.trigger == "none_failed"
    assert spec.included == () and not spec.gathers
    plain = flow.spec("files")
    assert (plain.bind, plain.map_over, plain.run_if, plain.trigger) == (
        (), (), None, "all_succeeded")
