"""The compilation layer: binding rules, context-key producers, definition errors, order,
and the plan itself (DESIGN.md: "Binding a handler's parameters", "Context keys", "Order",
"Failure semantics" on definition errors)."""

# No `from __future__ import annotations` here: `ctx: TaskContext` below must be the class
# itself; string annotations are tested through tests/flows/annotated.py.
import asyncio
from typing import Any, Callable

import pytest

from flowdsl import (
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    Flow,
    FlowError,
    MissingInputError,
    Plan,
    Priority,
    RunStatus,
    TaskContext,
    UnknownDependencyError,
)
from tests.flows import annotated, cyclic, diamond, linear, wide


def declare_and_compile(flow: Flow, declare: Callable[[], Any]) -> None:
    """A definition error may surface at decoration or at compile time; both are before
    any task runs, which is what DESIGN.md promises."""
    declare()
    flow.compile()


# == Binding a handler's parameters ===========================================================
# -- rule 1: a parameter named like a task id -> that task's result, and a dependency ---------
def test_rule1_parameter_named_like_a_task_is_its_result_and_a_dependency(flow: Flow) -> None:
    @flow.task(priority=Priority.CRITICAL)  # would run first if `a` were not a dependency
    def b(a):
        return a + 1

    @flow.task(priority=Priority.LOW)  # declared after its reader: a forward reference
    def a():
        return 41

    plan = flow.compile()
    assert plan.order == ("a", "b")
    assert plan.inputs == ()
    assert flow.run().results == {"a": 41, "b": 42}


def test_rule1_keyword_only_parameter_named_like_a_task(flow: Flow) -> None:
    @flow.task
    def a():
        return "A"

    @flow.task
    def b(*, a):
        return a * 2

    assert flow.compile().order == ("a", "b")
    assert flow.run().results["b"] == "AA"


def test_rule1_several_upstream_results(flow: Flow) -> None:
    @flow.task
    def total(left, right):
        return left + right

    flow.task(id="left")(lambda: 1)
    flow.task(id="right")(lambda: 10)

    assert flow.compile().order == ("left", "right", "total")
    assert flow.run().results["total"] == 11


# -- rule 2: annotated TaskContext or named `context` -> the live context ----------------------
def test_rule2_annotated_task_context_gets_the_live_context(flow: Flow) -> None:
    seen: dict[str, Any] = {}

    @flow.task
    def a(ctx: TaskContext):
        seen["ctx"] = ctx
        ctx.update_shared_state("written", True)

    plan = flow.compile()
    assert plan.inputs == ()  # not a context key
    result = flow.run()
    assert isinstance(seen["ctx"], TaskContext)
    assert seen["ctx"] is result.context
    assert result.context.shared_state["written"] is True


def test_rule2_parameter_named_context_gets_the_live_context(flow: Flow) -> None:
    seen: dict[str, Any] = {}

    @flow.task
    def a(context):
        seen["context"] = context

    assert flow.compile().inputs == ()
    result = flow.run()
    assert seen["context"] is result.context


def test_rule2_string_annotation_under_future_annotations() -> None:
    seen: dict[str, Any] = {}
    flow = annotated.build(seen)

    plan = flow.compile()
    assert plan.inputs == annotated.INPUTS == ()
    assert plan.order == annotated.ORDER
    result = flow.run()
    assert result.status is RunStatus.SUCCEEDED
    assert seen["ctx"] is result.context
    assert result.results["inspect"] == 14


def test_rule2_explicit_string_annotation(flow: Flow) -> None:
    seen: dict[str, Any] = {}

    @flow.task
    def a(state: "TaskContext"):  # noqa: F821 - a string, as the user wrote it
        seen["state"] = state

    assert flow.compile().inputs == ()
    assert flow.run().context is seen["state"]


# -- rule 3: `task_input` -> the seed-style dict -----------------------------------------------
def test_rule3_task_input_is_the_seed_style_dict(flow: Flow) -> None:
    seen: dict[str, Any] = {}

    @flow.task(priority=Priority.HIGH, requires=["data_source"], produces=["schema"])
    def load(data_source):
        return {"dataset": data_source, "records": 3, "schema": ["id", "name"]}

    @flow.task(requires=["data_source", "schema"], depends_on=["load"])
    def validate(task_input):
        seen.update(task_input)
        seen["completed before"] = [entry["task_id"] for entry in task_input["previous_results"]]
        if not task_input["load_result"]:
            raise ValueError("no data loaded")
        task_input["shared_state"]["validated"] = True  # a write, as through the context
        return {"valid": True}

    result = flow.run({"data_source": "customers.csv"}, run_id="run-1")
    assert result.status is RunStatus.SUCCEEDED
    assert seen["context"] is result.context
    assert seen["load_result"] == result.results["load"]
    assert seen["data_source"] == "customers.csv"  # a required key from the initial data
    assert seen["schema"] == ["id", "name"]  # a required key from its upstream producer
    assert seen["idempotency_key"] == "run-1:validate"
    assert seen["completed before"] == ["load"]
    assert list(seen["previous_results"]) == list(result.context.previous_results)
    assert result.context.shared_state["validated"] is True
    assert {"context", "shared_state", "previous_results", "data_source", "schema",
            "load_result", "idempotency_key"} <= set(seen)


def test_rule3_task_input_has_a_result_entry_per_parameter_free_dependency(flow: Flow) -> None:
    seen: dict[str, Any] = {}
    flow.add_task("a", "A", lambda: 1, max_retries=0)
    flow.add_task("b", "B", lambda: 2, max_retries=0)
    flow.add_task("c", "C", lambda task_input: seen.update(task_input), ["a", "b"], max_retries=0)

    flow.run(run_id="r")
    assert (seen["a_result"], seen["b_result"]) == (1, 2)
    assert seen["idempotency_key"] == "r:c"


# -- rule 4: any other name -> a context key ---------------------------------------------------
def test_rule4_context_key_from_the_initial_data_is_an_input(flow: Flow) -> None:
    @flow.task
    def extract(source):
        return f"read {source}"

    assert flow.compile().inputs == ("source",)
    assert flow.run({"source": "a.csv"}).results["extract"] == "read a.csv"


def test_rule4_context_key_from_its_upstream_producer(flow: Flow) -> None:
    @flow.task(produces=["rows"])
    def extract():
        return {"rows": [1, 2, 3]}

    @flow.task(depends_on=["extract"])
    def count(rows):
        return len(rows)

    assert flow.compile().inputs == ()
    # the producer's value wins over an initial value of the same key
    assert flow.run({"rows": []}).results["count"] == 3


def test_rule4_shared_state_as_found_beats_the_initial_data(flow: Flow) -> None:
    @flow.task
    def writer(context):
        context.shared_state["mode"] = "from state"  # a direct write, no `produces`

    @flow.task
    def reader(writer, mode="from default"):
        return mode

    assert flow.compile().inputs == ()  # optional: it has a default
    assert flow.run({"mode": "from data"}).results["reader"] == "from state"


def test_rule4_initial_data_beats_the_default(flow: Flow) -> None:
    @flow.task
    def reader(mode="from default"):
        return mode

    assert flow.run({"mode": "from data"}).results["reader"] == "from data"


def test_rule4_default_when_the_key_is_nowhere(flow: Flow) -> None:
    @flow.task
    def load(data_source="default.csv", *, limit=10):
        return (data_source, limit)

    assert flow.compile().inputs == ()
    assert flow.run().results["load"] == ("default.csv", 10)
    assert flow.run({"limit": 3}).results["load"] == ("default.csv", 3)


def test_rule4_keyword_only_context_key(flow: Flow) -> None:
    @flow.task
    def load(*, source):
        return source

    assert flow.compile().inputs == ("source",)
    assert flow.run({"source": "s3://x"}).results["load"] == "s3://x"


def test_requires_key_has_no_default_even_if_the_parameter_has_one(flow: Flow) -> None:
    @flow.task(requires=["data_source"])
    def load(data_source="default.csv"):
        return data_source

    assert flow.compile().inputs == ("data_source",)
    with pytest.raises(MissingInputError, match="data_source"):
        flow.run()
    assert flow.run({"data_source": "given.csv"}).results["load"] == "given.csv"


def test_requires_key_without_a_parameter_is_an_input(flow: Flow) -> None:
    @flow.task(requires=["token"])
    def call(context):
        return context.data["token"]

    assert flow.compile().inputs == ("token",)
    assert flow.run({"token": "t0k"}).results["call"] == "t0k"


def test_requires_key_with_an_upstream_producer_is_not_an_input(flow: Flow) -> None:
    @flow.task(produces=["token"])
    def login():
        return {"token": "t0k"}

    @flow.task(requires=["token"], depends_on=[login])
    def call(task_input):
        return task_input["token"]

    assert flow.compile().inputs == ()
    assert flow.run().results["call"] == "t0k"


@pytest.mark.parametrize("star", ["*args", "**kwargs", "*rows", "**options"])
def test_variadic_parameters_are_a_definition_error_naming_task_and_parameter(
    flow: Flow, star: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def summarize(a, {star}):\n    return None", namespace)

    with pytest.raises(DefinitionError) as excinfo:
        declare_and_compile(flow, lambda: flow.task(namespace["summarize"]))
    message = str(excinfo.value)
    assert "summarize" in message
    assert star.lstrip("*") in message


@pytest.mark.parametrize("task_first", [True, False])
def test_name_both_task_id_and_produced_key_is_a_definition_error(
    flow: Flow, task_first: bool
) -> None:
    def declare() -> None:
        def rows():
            return [1]

        def extract():
            return {"rows": [2]}

        if task_first:
            flow.task(rows)
            flow.task(produces=["rows"])(extract)
        else:
            flow.task(produces=["rows"])(extract)
            flow.task(rows)

    with pytest.raises(DefinitionError, match="rows") as excinfo:
        declare_and_compile(flow, declare)
    assert "extract" in str(excinfo.value)


# == Context keys =============================================================================
def test_input_binds_to_the_latest_ancestor_producer(flow: Flow) -> None:
    @flow.task(produces=["version"])
    def first():
        return {"version": 1}

    @flow.task(produces=["version"])
    def second(first):
        return {"version": 2}

    @flow.task
    def reader(second, version):
        return version

    assert flow.compile().inputs == ()
    assert flow.run().results["reader"] == 2


def test_input_gets_its_producers_value_whatever_others_wrote_since(flow: Flow) -> None:
    @flow.task(produces=["k"])
    def origin():
        return {"k": "origin"}

    @flow.task(priority=Priority.HIGH, produces=["k"])  # downstream of origin, not of reader
    def overwrite(origin):
        return {"k": "overwrite"}

    @flow.task(priority=Priority.HIGH)
    def scribble(origin, context):
        context.shared_state["k"] = "scribble"  # a direct write, no `produces`

    @flow.task(priority=Priority.LOW)
    def reader(origin, k):
        return k

    plan = flow.compile()
    assert plan.order.index("overwrite") < plan.order.index("reader")
    assert plan.order.index("scribble") < plan.order.index("reader")
    result = flow.run()
    assert result.results["reader"] == "origin"
    assert result.context.shared_state["k"] == "scribble"


def test_a_task_may_read_and_produce_the_same_key(flow: Flow) -> None:
    @flow.task(produces=["n"])
    def bump(n):
        return {"n": n + 1}

    @flow.task
    def show(bump, n):
        return n

    assert flow.compile().inputs == ("n",)  # bump has no upstream producer of n
    result = flow.run({"n": 0})
    assert result.results["show"] == 1  # from bump, its producer
    assert result.context.shared_state["n"] == 1
    assert result.context.data["n"] == 0


@pytest.mark.parametrize("form", ["parameter", "parameter with default", "requires"])
def test_input_produced_by_a_unique_non_ancestor_becomes_an_inferred_dependency(
    flow: Flow, form: str
) -> None:
    # DESIGN "Names are edges" rule 2 (rev. 3 changed this from a DefinitionError)
    seen: list[Any] = []
    if form == "parameter":
        def report(rows):
            seen.append(rows)
        flow.task(report)
    elif form == "parameter with default":
        def report(rows=()):
            seen.append(rows)
        flow.task(report)
    else:
        flow.task(id="report", requires=["rows"])(
            lambda task_input: seen.append(task_input["rows"]))

    @flow.task(priority=Priority.LOW, produces=["rows"])  # declared after, runs first anyway
    def extract():
        return {"rows": [1, 2]}

    plan = flow.compile()
    assert plan.order == ("extract", "report")
    assert plan["report"].dependencies == ("extract",)
    assert dict(plan["report"].inferred) == {"extract": "rows"}
    assert dict(plan["report"].producers) == {"rows": "extract"}
    assert plan.inputs == ()
    flow.run()
    assert seen == [[1, 2]]


def test_input_produced_only_by_a_downstream_task_is_a_cycle_naming_the_key(flow: Flow) -> None:
    def declare() -> None:
        @flow.task
        def report(rows=None):
            return rows

        @flow.task(produces=["rows"])
        def extract(report):
            return {"rows": []}

    with pytest.raises(CycleError) as excinfo:
        declare_and_compile(flow, declare)
    message = str(excinfo.value)
    for part in ("rows", "report", "extract", "inferred"):
        assert part in message, (part, message)
    assert set(excinfo.value.cycle) == {"report", "extract"}


def test_two_unordered_producers_of_a_key_are_a_definition_error(flow: Flow) -> None:
    def declare() -> None:
        @flow.task(produces=["rows"])
        def from_db():
            return {"rows": [1]}

        @flow.task(produces=["rows"])
        def from_csv():
            return {"rows": [2]}

    with pytest.raises(DefinitionError) as excinfo:
        declare_and_compile(flow, declare)
    message = str(excinfo.value)
    for part in ("rows", "from_db", "from_csv"):
        assert part in message, (part, message)


def test_two_ordered_producers_of_a_key_are_fine(flow: Flow) -> None:
    @flow.task(produces=["rows"])
    def from_db():
        return {"rows": [1]}

    @flow.task(produces=["rows"], depends_on=[from_db])
    def from_csv():
        return {"rows": [2]}

    assert flow.compile().order == ("from_db", "from_csv")
    assert flow.run().context.shared_state["rows"] == [2]


# == plan.inputs ==============================================================================
def test_plan_inputs_lists_each_required_key_once(flow: Flow) -> None:
    @flow.task
    def a(source, limit=100):
        return source

    @flow.task(requires=["token"])
    def b(source, token, verbose=False):
        return token

    @flow.task(produces=["rows"])
    def c():
        return {"rows": []}

    @flow.task(depends_on=["c"])
    def d(rows):
        return rows

    inputs = flow.compile().inputs
    assert isinstance(inputs, tuple)
    assert sorted(inputs) == ["source", "token"]


def test_fixture_shapes_compile_to_their_documented_plans() -> None:
    for module in (linear, diamond):
        plan = module.build().compile()
        assert plan.order == module.ORDER
        assert plan.inputs == module.INPUTS
    plan = wide.build(12).compile()
    assert plan.order == wide.order(12)
    assert plan.inputs == ()


# == Definition errors ========================================================================
def test_cycle_error_carries_the_cycle() -> None:
    with pytest.raises(CycleError) as excinfo:
        cyclic.build().compile()
    error = excinfo.value
    assert isinstance(error, DefinitionError) and isinstance(error, ValueError)
    assert set(error.cycle) == cyclic.CYCLE
    assert "root" not in error.cycle
    for member in cyclic.CYCLE:
        assert member in str(error)


def test_cycle_through_parameter_names(flow: Flow) -> None:
    @flow.task
    def chicken(egg):
        pass

    @flow.task
    def egg(chicken):
        pass

    with pytest.raises(CycleError) as excinfo:
        flow.compile()
    assert set(excinfo.value.cycle) == {"chicken", "egg"}


def test_self_cycle(flow: Flow) -> None:
    @flow.task
    def fine():
        pass

    @flow.task(depends_on=["ouroboros"])
    def ouroboros():
        pass

    with pytest.raises(CycleError) as excinfo:
        flow.compile()
    assert set(excinfo.value.cycle) == {"ouroboros"}
    assert "ouroboros" in str(excinfo.value)


def test_unknown_dependency_suggests_a_close_id(flow: Flow) -> None:
    @flow.task
    def extract():
        pass

    @flow.task(depends_on=["extrct"])
    def load():
        pass

    with pytest.raises(UnknownDependencyError) as excinfo:
        flow.compile()
    message = str(excinfo.value)
    assert isinstance(excinfo.value, DefinitionError)
    assert "load" in message and "extrct" in message
    assert "did you mean" in message and "extract" in message.split("did you mean")[1]


def test_unknown_dependency_in_add_task_suggests_a_close_id(flow: Flow) -> None:
    flow.add_task("validate_data", "Validate", lambda: None)
    flow.add_task("transform", "Transform", lambda: None, dependencies=["validate_dat"])

    with pytest.raises(UnknownDependencyError) as excinfo:
        flow.compile()
    message = str(excinfo.value)
    assert "transform" in message and "validate_dat" in message
    assert "did you mean" in message and "validate_data" in message.split("did you mean")[1]


@pytest.mark.parametrize("how", ["two functions, one name", "id= keyword", "add_task"])
def test_duplicate_task_id_is_a_definition_error(flow: Flow, how: str) -> None:
    def declare() -> None:
        def extract():
            return 1

        def other():
            return 2

        if how == "two functions, one name":
            flow.task(extract)
            other.__name__ = "extract"
            flow.task(other)
        elif how == "id= keyword":
            flow.task(extract)
            flow.task(id="extract")(other)
        else:
            flow.add_task("extract", "Extract", extract)
            flow.add_task("extract", "Extract again", other)

    with pytest.raises(DuplicateTaskError, match="extract") as excinfo:
        declare_and_compile(flow, declare)
    assert isinstance(excinfo.value, DefinitionError)


def test_depends_on_a_decorated_function(flow: Flow) -> None:
    @flow.task(priority=Priority.LOW, id="extract_rows")
    def extract():
        return 1

    @flow.task(priority=Priority.CRITICAL, depends_on=[extract])
    def report():
        return 2

    assert flow.compile().order == ("extract_rows", "report")


def test_depends_on_a_function_that_is_no_task_of_this_flow(flow: Flow) -> None:
    other = Flow("other")

    @other.task
    def elsewhere():
        pass

    @flow.task(depends_on=[elsewhere])
    def report():
        pass

    with pytest.raises(DefinitionError, match="elsewhere"):
        flow.compile()


def test_forward_references_by_id_and_parameter(flow: Flow) -> None:
    @flow.task(depends_on=["middle"])
    def last(first):
        return first

    @flow.task
    def middle(first):
        return None

    @flow.task
    def first():
        return "first"

    assert flow.compile().order == ("first", "middle", "last")
    assert flow.run().results["last"] == "first"


# == Order ====================================================================================
def test_lower_priority_value_runs_first_among_ready_tasks(flow: Flow) -> None:
    for task_id, priority in [("low", Priority.LOW), ("normal", Priority.NORMAL),
                              ("high", Priority.HIGH), ("critical", Priority.CRITICAL),
                              ("minus", -5), ("ten", 10)]:
        flow.task(id=task_id, priority=priority)(lambda: None)

    assert flow.compile().order == ("minus", "critical", "high", "normal", "low", "ten")


def test_equal_priorities_keep_declaration_order(flow: Flow) -> None:
    ids = ["zeta", "alpha", "mu", "beta", "omega", "a", "z"]
    for task_id in ids:
        flow.task(id=task_id)(lambda: None)

    assert flow.compile().order == tuple(ids)


def test_a_high_priority_task_never_jumps_its_dependencies(flow: Flow) -> None:
    @flow.task(priority=Priority.LOW)
    def slow_root():
        pass

    @flow.task(priority=Priority.CRITICAL)
    def urgent(slow_root):
        pass

    @flow.task(priority=Priority.NORMAL)
    def ordinary():
        pass

    @flow.task(priority=Priority.NORMAL)
    def later(ordinary):
        pass

    # ready at first: slow_root (LOW), ordinary (NORMAL) -> ordinary; then later (NORMAL)
    # beats slow_root (LOW); urgent waits for slow_root whatever its priority.
    assert flow.compile().order == ("ordinary", "later", "slow_root", "urgent")


def test_priority_applies_only_among_ready_tasks(flow: Flow) -> None:
    @flow.task(priority=Priority.NORMAL)
    def root():
        pass

    @flow.task(priority=Priority.HIGH)
    def child(root):
        pass

    @flow.task(priority=Priority.LOW)
    def loner():
        pass

    assert flow.compile().order == ("root", "child", "loner")


# == The plan =================================================================================
def test_plan_is_immutable(flow: Flow) -> None:
    @flow.task
    def a(source):
        pass

    plan = flow.compile()
    assert isinstance(plan, Plan)
    assert isinstance(plan.order, tuple) and isinstance(plan.inputs, tuple)
    with pytest.raises(AttributeError):
        plan.order = ("b",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.inputs = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.new_attribute = 1  # type: ignore[attr-defined]
    assert plan.order == ("a",) and plan.inputs == ("source",)


def test_plan_mappings_are_read_only(flow: Flow) -> None:
    @flow.task(produces=["k"])
    def a(source):
        return {"k": 1}

    @flow.task
    def b(a, k):
        pass

    plan = flow.compile()
    mappings = {
        "input_readers": plan.input_readers,
        "index": plan.index,
        "children": plan.children,
        "producers of b": plan["b"].producers,
    }
    assert dict(plan.input_readers) == {"source": ("a",)}
    assert dict(plan["b"].producers) == {"k": "a"}
    for label, mapping in mappings.items():
        with pytest.raises(TypeError):
            mapping["x"] = 1  # type: ignore[index]
        assert "x" not in mapping, label
    for step in plan.steps:
        with pytest.raises(AttributeError):
            step.priority = 0  # type: ignore[misc]


def test_plan_is_cached_until_a_task_is_added(flow: Flow) -> None:
    @flow.task
    def a():
        pass

    first = flow.compile()
    assert flow.compile() is first

    @flow.task
    def b(a):
        pass

    second = flow.compile()
    assert second is not first
    assert second.order == ("a", "b")
    assert first.order == ("a",)  # an old plan never changes
    assert flow.compile() is second

    flow.add_task("c", "C", lambda: None)
    assert flow.compile() is not second
    assert flow.compile().order == ("a", "b", "c")


def test_a_failed_compile_is_not_cached_as_a_plan(flow: Flow) -> None:
    @flow.task(depends_on=["later"])
    def a():
        pass

    with pytest.raises(UnknownDependencyError):
        flow.compile()

    @flow.task
    def later():
        pass

    assert flow.compile().order == ("later", "a")


# == Errors come before any task runs =========================================================
def _cycle(flow: Flow, ran: list[str]) -> None:
    flow.task(id="x", depends_on=["y"])(lambda: ran.append("x"))
    flow.task(id="y", depends_on=["x"])(lambda: ran.append("y"))


def _unknown(flow: Flow, ran: list[str]) -> None:
    flow.task(id="x", depends_on=["first_"])(lambda: ran.append("x"))


def _duplicate(flow: Flow, ran: list[str]) -> None:
    flow.task(id="first")(lambda: ran.append("first again"))


def _variadic(flow: Flow, ran: list[str]) -> None:
    def spread(*args):
        ran.append("spread")

    flow.task(spread)


def _ambiguous(flow: Flow, ran: list[str]) -> None:
    flow.task(id="p1", produces=["k"])(lambda: ran.append("p1") or {"k": 1})
    flow.task(id="p2", produces=["k"])(lambda: ran.append("p2") or {"k": 2})


def _inferred_cycle(flow: Flow, ran: list[str]) -> None:
    def reader(k=0):
        ran.append("reader")

    flow.task(reader)
    flow.task(id="p", produces=["k"], depends_on=["reader"])(lambda: ran.append("p") or {"k": 1})


def _id_and_key(flow: Flow, ran: list[str]) -> None:
    flow.task(id="p", produces=["first"])(lambda: ran.append("p") or {"first": 1})


BROKEN = {
    "cycle": (_cycle, CycleError),
    "unknown dependency": (_unknown, UnknownDependencyError),
    "duplicate id": (_duplicate, DuplicateTaskError),
    "*args": (_variadic, DefinitionError),
    "ambiguous producers": (_ambiguous, DefinitionError),
    "cycle through an inferred edge": (_inferred_cycle, CycleError),
    "task id is a produced key": (_id_and_key, DefinitionError),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("entry", ["run", "arun"])
def test_definition_errors_are_raised_by_run_before_any_task(
    flow: Flow, case: str, entry: str
) -> None:
    ran: list[str] = []
    breaker, error = BROKEN[case]

    with pytest.raises(error):
        flow.task(id="first", priority=Priority.CRITICAL)(lambda: ran.append("first"))
        breaker(flow, ran)
        if entry == "run":
            flow.run()
        else:
            asyncio.run(flow.arun())
    assert ran == []


def test_cyclic_fixture_run_raises_before_any_task() -> None:
    ran: list[str] = []
    with pytest.raises(CycleError):
        cyclic.build(ran).run()
    assert ran == []


def test_missing_input_names_key_and_readers_before_any_task(flow: Flow) -> None:
    ran: list[str] = []

    @flow.task(priority=Priority.CRITICAL)
    def first():
        ran.append("first")

    @flow.task
    def extract(first, source):
        ran.append("extract")

    @flow.task
    def audit(source, context):
        ran.append("audit")

    with pytest.raises(MissingInputError) as excinfo:
        flow.run({"unrelated": 1})
    error = excinfo.value
    assert isinstance(error, LookupError) and isinstance(error, FlowError)
    message = str(error)
    for part in ("source", "extract", "audit"):
        assert part in message, (part, message)
    assert ran == []

    assert flow.run({"source": "a.csv"}).status is RunStatus.SUCCEEDED
    assert ran == ["first", "extract", "audit"]


def test_missing_input_from_arun_before_any_task(flow: Flow) -> None:
    ran: list[str] = []

    @flow.task
    async def extract(source):
        ran.append("extract")

    with pytest.raises(MissingInputError, match="source"):
        asyncio.run(flow.arun())
    assert ran == []


def test_missing_input_lists_every_missing_key(flow: Flow) -> None:
    @flow.task(requires=["token"])
    def call(endpoint):
        pass

    with pytest.raises(MissingInputError) as excinfo:
        flow.run({})
    assert "token" in str(excinfo.value) and "endpoint" in str(excinfo.value)
    assert "call" in str(excinfo.value)


def test_each_step_field_holds_what_the_task_declared() -> None:
    """Every field of a compiled `Step` by name (the compiler builds steps positionally)."""
    import flowdsl

    flow = Flow("fields", pools={"db": 2})

    @flow.task(produces=["rows"])
    def src():
        return {"rows": [1, 2]}

    def wanted(src):
        return True

    @flow.task(id="t", name="The task", priority=1, requires=["rows"], retries=2, timeout=3.0,
               serializer="pickle", pool="db", map_over="rows", run_if=wanted,
               trigger="none_failed", cache=flowdsl.Cache(ttl=5.0), depends_on=["src"])
    def handler(rows, limit=3):
        return rows

    plan = flow.compile()
    step = plan["t"]
    assert (step.id, step.name, step.position, step.spec) == ("t", "The task", 1, flow.spec("t"))
    assert step.handler is handler and step.is_async is False
    assert (step.priority, step.critical, step.dependencies) == (1, True, ("src",))
    assert (step.requires, step.produces, step.inputs) == (("rows",), (), ("rows", "limit"))
    assert dict(step.producers) == {"rows": "src"}
    assert (step.retries, step.timeout, step.serializer, step.pool) == (2, 3.0, "pickle", "db")
    assert step.retry_wait is flow.spec("t").retry_wait
    assert step.retry_on is flow.spec("t").retry_on
    assert step.importance == 3 + 1  # critical, declares requires (one dependency)
    assert callable(step.bind) and callable(step.condition) and step.run_if is wanted
    assert dict(step.inferred) == {}
    assert (step.map_over, step.map_positions, step.trigger) == (("rows",), (0,), "none_failed")
    assert (step.included, step.gathers) == ((), False)
    assert step.cache == flowdsl.Cache(ttl=5.0)
    assert step.cache_inputs == (("rows", 0, "rows"), ("limit", 1, "limit"))
    assert step.uncacheable is None
    assert plan["src"].serializer == "json" and plan["src"].cache is None
    assert plan["src"].critical is False and plan["src"].produces == ("rows",)


def test_a_task_declared_before_its_dependency_still_runs_after_it() -> None:
    """Declaration order is the plan only when each task comes after its dependencies: a
    forward reference by name, by depends_on or through a produced key reorders."""
    flow = Flow("forward")

    @flow.task
    def first(second):  # a forward reference: `second` is declared below
        return second + 1

    @flow.task
    def second():
        return 1

    @flow.task(depends_on=["fourth"])
    def third():
        return 3

    @flow.task
    def fourth():
        return 4

    @flow.task
    def fifth(late_key):  # inferred edge: `sixth` produces the key
        return late_key

    @flow.task(produces=["late_key"])
    def sixth():
        return {"late_key": 6}

    assert flow.compile().order == ("second", "first", "fourth", "third", "sixth", "fifth")
    assert flow.run().results["fifth"] == 6
