"""The declaration layer: ``@flow.task``, ``flow.add_task`` and ``flow.spec`` (DESIGN.md,
"dsl / registry" and the ``@flow.task(...)`` keywords)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import pytest
import tenacity

from flowdsl import DefinitionError, Flow, FlowError, Priority, TaskPriority, TaskSpec


def _state(attempt: int, exc: BaseException | None = None) -> tenacity.RetryCallState:
    """A tenacity call state after ``attempt`` attempts, the last one raising ``exc``."""
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    if exc is not None:
        state.set_exception((type(exc), exc, None))
    return state


def waits(strategy: Any, attempts: int) -> list[float]:
    """The seconds a tenacity wait strategy asks for after attempt 1, 2, ... ``attempts``."""
    return [float(strategy(_state(n))) for n in range(1, attempts + 1)]


def retried(predicate: Any, exc: BaseException) -> bool:
    """Whether a tenacity retry predicate retries an attempt that raised ``exc``."""
    return bool(predicate(_state(1, exc)))


# -- the decorator returns the function unchanged ---------------------------------------------
def test_bare_decorator_returns_the_function_itself_still_callable(flow: Flow) -> None:
    def extract(source):
        return f"read {source}"

    returned = flow.task(extract)

    assert returned is extract
    assert extract("a.csv") == "read a.csv"
    assert flow.spec(extract).id == "extract"
    assert flow.spec(extract).name == "extract"


def test_decorator_with_keywords_returns_the_function_itself(flow: Flow) -> None:
    def transform(rows):
        return [r * 2 for r in rows]

    returned = flow.task(priority=Priority.HIGH, produces=["out"], retries=2, timeout=5.0)(transform)

    assert returned is transform
    assert transform([1, 2]) == [2, 4]
    assert flow.spec(transform).priority == Priority.HIGH


def test_decorated_async_function_is_returned_unchanged(flow: Flow) -> None:
    async def fetch():
        return 1

    assert flow.task(fetch) is fetch
    assert inspect.iscoroutinefunction(fetch)


def test_decorator_syntax_binds_the_name_to_the_plain_function(flow: Flow) -> None:
    @flow.task
    def a():
        return "a"

    @flow.task(id="bee", depends_on=["a"])
    def b():
        return "b"

    assert (a(), b()) == ("a", "b")
    assert a.__name__ == "a" and b.__name__ == "b"
    assert not hasattr(a, "__wrapped__") and not hasattr(b, "__wrapped__")


# -- flow.spec -------------------------------------------------------------------------------
def test_spec_by_function_and_by_id_is_the_same_spec(flow: Flow) -> None:
    @flow.task(
        id="load_rows",
        name="Load the rows",
        depends_on=["other"],
        priority=Priority.CRITICAL,
        requires=["data_source"],
        produces=["rows"],
        retries=2,
        timeout=1.5,
    )
    def load(data_source):
        return {"rows": []}

    @flow.task
    def other():
        pass

    spec = flow.spec(load)
    assert isinstance(spec, TaskSpec)
    assert flow.spec("load_rows") == spec
    assert spec.id == "load_rows"
    assert spec.name == "Load the rows"
    assert tuple(spec.depends_on) == ("other",)
    assert spec.priority == Priority.CRITICAL
    assert tuple(spec.requires) == ("data_source",)
    assert tuple(spec.produces) == ("rows",)
    assert spec.retries == 2
    assert spec.timeout == 1.5
    assert spec.handler is load


def test_spec_is_frozen(flow: Flow) -> None:
    @flow.task
    def a():
        pass

    with pytest.raises(AttributeError):
        flow.spec(a).priority = 1  # type: ignore[misc]
    assert flow.spec(a).priority == Priority.NORMAL


def test_one_function_in_two_flows_gets_two_specs() -> None:
    first, second = Flow("first"), Flow("second")

    def shared(x=1):
        return x

    first.task(priority=Priority.HIGH)(shared)
    second.task(priority=Priority.LOW, retries=4)(shared)

    assert first.spec(shared).priority == Priority.HIGH
    assert first.spec(shared).retries == 0
    assert second.spec(shared).priority == Priority.LOW
    assert second.spec(shared).retries == 4
    assert first.spec(shared) is not second.spec(shared)
    assert shared(x=5) == 5  # still the user's plain function


def test_signature_is_read_once_at_decoration(flow: Flow) -> None:
    @flow.task
    def a():
        return 1

    @flow.task
    def b(a):
        return a + 1

    b.__signature__ = inspect.Signature()  # changed after decoration: not seen by the flow

    assert flow.compile().order == ("a", "b")
    assert flow.run().results["b"] == 2


# -- defaults ----------------------------------------------------------------------------------
def test_decorator_defaults(flow: Flow) -> None:
    @flow.task
    def a():
        pass

    spec = flow.spec(a)
    assert spec.priority == Priority.NORMAL == 3
    assert spec.retries == 0  # the decorator's default: no retries
    assert spec.timeout is None
    assert tuple(spec.requires) == () and tuple(spec.produces) == ()
    assert waits(spec.retry_wait, 3) == [1.0, 2.0, 4.0]
    assert waits(spec.retry_wait, 10)[-1] == 60.0  # capped at 60 s
    assert retried(spec.retry_on, ValueError("x"))
    assert retried(spec.retry_on, RuntimeError("x"))


def test_task_priority_is_an_alias_of_priority() -> None:
    assert TaskPriority is Priority
    assert [(p.name, int(p)) for p in Priority] == [
        ("CRITICAL", 1), ("HIGH", 2), ("NORMAL", 3), ("LOW", 4)]


def test_any_int_is_a_priority(flow: Flow) -> None:
    flow.task(id="urgent", priority=0)(lambda: None)
    flow.task(id="whenever", priority=10)(lambda: None)
    assert flow.spec("urgent").priority == 0
    assert flow.spec("whenever").priority == 10


# -- add_task, the seed's imperative form ------------------------------------------------------
def test_add_task_keeps_the_seed_defaults(flow: Flow) -> None:
    def load(task_input):
        return task_input["data_source"]

    flow.add_task("load_data", "Load data", load)

    spec = flow.spec("load_data")
    assert spec.id == "load_data"
    assert spec.name == "Load data"
    assert spec.handler is load
    assert spec.priority == Priority.NORMAL
    assert spec.retries == 3  # the seed's max_retries=3
    assert waits(spec.retry_wait, 3) == [1.0, 2.0, 4.0]  # the seed's 2**attempt backoff
    assert flow.spec(load) == spec


def test_add_task_takes_the_seed_parameter_names(flow: Flow) -> None:
    flow.add_task("load", "Load", lambda: {"rows": [1]})
    flow.add_task(
        task_id="validate",
        name="Validate",
        handler=lambda task_input: {"valid": True},
        dependencies=["load"],
        priority=TaskPriority.CRITICAL,
        max_retries=1,
        timeout_seconds=2.5,
        context_requirements=["data_source"],
        output_context_keys=["valid"],
    )

    spec = flow.spec("validate")
    assert spec.name == "Validate"
    assert tuple(spec.depends_on) == ("load",)
    assert spec.priority == Priority.CRITICAL
    assert spec.retries == 1
    assert spec.timeout == 2.5
    assert tuple(spec.requires) == ("data_source",)
    assert tuple(spec.produces) == ("valid",)


def test_add_task_positional_dependencies_and_priority(flow: Flow) -> None:
    flow.add_task("late", "Late", lambda: None, [], Priority.LOW)
    flow.add_task("early", "Early", lambda: None, [], Priority.HIGH)
    flow.add_task("last", "Last", lambda: None, ["late", "early"], Priority.CRITICAL)

    assert flow.compile().order == ("early", "late", "last")


def test_add_task_and_decorator_are_equivalent() -> None:
    imperative, declarative = Flow("imperative"), Flow("declarative")

    def extract():
        return [3, 1, 2]

    def order_rows(task_input):
        return sorted(task_input["extract_result"])

    imperative.add_task("extract", "extract", extract, max_retries=0)
    imperative.add_task("order_rows", "order_rows", order_rows, ["extract"], Priority.HIGH,
                        max_retries=0)
    declarative.task(extract)
    declarative.task(depends_on=["extract"], priority=Priority.HIGH)(order_rows)

    assert imperative.compile().order == declarative.compile().order
    assert imperative.run().results == declarative.run().results == {
        "extract": [3, 1, 2], "order_rows": [1, 2, 3]}


# -- retry_wait and retry_on -------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0, 0.25, 3])
def test_retry_wait_number_waits_that_many_seconds(flow: Flow, seconds: float) -> None:
    flow.task(id="t", retries=3, retry_wait=seconds)(lambda: None)
    assert waits(flow.spec("t").retry_wait, 3) == [float(seconds)] * 3


def test_retry_wait_tenacity_object_is_passed_straight_through(flow: Flow) -> None:
    strategy = tenacity.wait_fixed(2) + tenacity.wait_exponential(multiplier=0.5, max=8)
    flow.task(id="t", retries=2, retry_wait=strategy)(lambda: None)
    assert flow.spec("t").retry_wait is strategy


def test_add_task_retry_wait_overrides_the_seed_backoff(flow: Flow) -> None:
    flow.add_task("t", "t", lambda: None, retry_wait=0)
    assert waits(flow.spec("t").retry_wait, 3) == [0.0, 0.0, 0.0]


def test_retry_on_one_exception_type(flow: Flow) -> None:
    flow.task(id="t", retries=2, retry_on=ConnectionError)(lambda: None)
    predicate = flow.spec("t").retry_on
    assert retried(predicate, ConnectionError("down"))
    assert retried(predicate, ConnectionRefusedError("subclass"))
    assert not retried(predicate, ValueError("bad data"))


def test_retry_on_several_exception_types(flow: Flow) -> None:
    flow.task(id="t", retries=2, retry_on=(ConnectionError, TimeoutError))(lambda: None)
    predicate = flow.spec("t").retry_on
    assert retried(predicate, ConnectionError())
    assert retried(predicate, TimeoutError())
    assert not retried(predicate, KeyError("k"))


def test_retry_on_tenacity_predicate(flow: Flow) -> None:
    flow.task(id="t", retries=2,
              retry_on=tenacity.retry_if_exception_message(match="flaky.*"))(lambda: None)
    predicate = flow.spec("t").retry_on
    assert retried(predicate, RuntimeError("flaky network"))
    assert not retried(predicate, RuntimeError("permanent"))


# -- bad keyword values ------------------------------------------------------------------------
BAD_KEYWORDS = [
    {"priority": "high"},
    {"priority": 2.5},
    {"retries": -1},
    {"retries": "3"},
    {"retry_wait": -1},
    {"retry_wait": "1s"},
    {"retry_on": "ValueError"},
    {"retry_on": 42},
    {"timeout": 0},
    {"timeout": -1.0},
    {"timeout": "5"},
    {"requires": [1]},
    {"produces": [None]},
    {"depends_on": [42]},
]


def _declare_and_compile(flow: Flow, declare: Callable[[], Any]) -> None:
    """Definition errors may come at decoration or at compile time (DESIGN: before any run)."""
    declare()
    flow.compile()


@pytest.mark.parametrize("keywords", BAD_KEYWORDS, ids=lambda kw: repr(kw))
def test_bad_keyword_value_is_a_definition_error_naming_the_task(
    flow: Flow, keywords: dict[str, Any]
) -> None:
    def load_rows():
        return None

    with pytest.raises(DefinitionError, match="load_rows"):
        _declare_and_compile(flow, lambda: flow.task(**keywords)(load_rows))


@pytest.mark.parametrize(
    "keywords",
    [{"max_retries": -1}, {"timeout_seconds": 0}, {"priority": "low"},
     {"context_requirements": [3]}],
    ids=lambda kw: repr(kw),
)
def test_bad_add_task_value_is_a_definition_error_naming_the_task(
    flow: Flow, keywords: dict[str, Any]
) -> None:
    with pytest.raises(DefinitionError, match="load_rows"):
        _declare_and_compile(
            flow, lambda: flow.add_task("load_rows", "Load rows", lambda: None, **keywords))


def test_a_definition_error_is_a_value_error(flow: Flow) -> None:
    with pytest.raises(ValueError):
        _declare_and_compile(flow, lambda: flow.task(id="t", retries=-1)(lambda: None))


# -- isolation ---------------------------------------------------------------------------------
def test_two_flows_never_see_each_others_tasks() -> None:
    etl, other = Flow("etl"), Flow("other")

    @etl.task
    def extract():
        return "etl"

    assert other.compile().order == ()
    with pytest.raises((LookupError, FlowError)):
        other.spec("extract")
    with pytest.raises((LookupError, FlowError)):
        other.spec(extract)

    @other.task(id="extract")  # the same id in another flow is no duplicate
    def extract_other():
        return "other"

    @other.task
    def use(extract):
        return extract

    assert etl.compile().order == ("extract",)
    assert other.run().results == {"extract": "other", "use": "other"}
    assert etl.run().results == {"extract": "etl"}


def test_a_task_of_another_flow_is_just_a_context_key_here() -> None:
    upstream, downstream = Flow("upstream"), Flow("downstream")

    @upstream.task
    def extract():
        return 1

    @downstream.task
    def report(extract):
        return extract

    assert downstream.compile().inputs == ("extract",)
    assert downstream.run({"extract": 5}).results == {"report": 5}
