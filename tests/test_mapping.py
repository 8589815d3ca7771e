"""Mapping: one task, many elements (``map_over=``), run on every executor."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

import flowdsl.running.metrics
from flowdsl import Flow, FlowError, MapError, RunStatus, TaskStatus, current_task
from flowdsl.running.events import ElementFinished, TaskFinished, TaskMapped

RunFlow = Callable[..., Any]


def fan_out(flow: Flow, **options: Any) -> None:
    @flow.task
    def numbers(count: int) -> list[int]:
        return list(range(count))

    @flow.task(map_over="numbers", **options)
    def square(numbers: int, factor: int = 1) -> int:
        return numbers * numbers * factor

    @flow.task
    def total(square: list[int]) -> int:
        return sum(square)


def test_each_element_runs_once_and_the_result_is_the_list_in_element_order(
        flow: Flow, run_flow: RunFlow) -> None:
    fan_out(flow)
    result = run_flow(flow, {"count": 5, "factor": 2})
    assert result.status is RunStatus.SUCCEEDED
    assert result.results["square"] == [0, 2, 8, 18, 32]
    assert result.results["total"] == 60
    elements = result.tasks["square"].elements
    assert [e.index for e in elements] == [0, 1, 2, 3, 4]
    assert all(e.status is TaskStatus.COMPLETED and e.attempts == 1 for e in elements)
    assert [e.result for e in elements] == [0, 2, 8, 18, 32]
    assert all(e.duration is not None and e.error is None for e in elements)
    assert result.tasks["square"].attempts == 5
    assert result.tasks["total"].elements is None
    assert result.summary["total_tasks"] == 3
    assert result.summary["elements"] == 5


def test_the_summary_counts_elements_as_task_switches_and_their_spans_as_handler_time(
        flow: Flow, run_flow: RunFlow) -> None:
    """A mapped task's time in handlers is its elements' (not the whole map's): the summary,
    which the runtime sums as elements complete, agrees with the tasks' and elements' own."""
    flow.task(id="items")(lambda: [0.002, 0.001, 0.003])
    flow.task(id="nap", map_over="items")(lambda items: time.sleep(items))
    flow.task(id="after", depends_on=["nap"])(lambda: None)
    result = run_flow(flow)
    summary, tasks = result.summary, result.tasks
    elements = tasks["nap"].elements
    assert elements is not None and summary["elements"] == 3
    assert summary["total_execution_time"] == pytest.approx(
        sum(t.duration for t in tasks.values()))
    plain = [t for t in tasks.values() if t.elements is None]
    spans = [(e.started_at, e.ended_at) for e in [*plain, *elements]]
    in_handlers = flowdsl.running.metrics.busy_time(spans)
    assert in_handlers >= 0.003  # (at least the longest element: they may overlap)
    assert summary["orchestration_overhead_per_task"] == pytest.approx(
        (summary["wall_time"] - in_handlers) / (3 + 3), abs=1e-6)


def test_an_empty_iterable_completes_with_an_empty_list(flow: Flow, run_flow: RunFlow) -> None:
    fan_out(flow)
    result = run_flow(flow, {"count": 0})
    assert result.status is RunStatus.SUCCEEDED
    assert result.results["square"] == []
    assert result.tasks["square"].elements == []
    assert result.results["total"] == 0
    assert result.summary["elements"] == 0


@pytest.mark.parametrize("value", ["abc", b"abc", {"a": 1}, 42])
def test_a_value_that_cannot_be_mapped_fails_the_task_before_any_element(
        flow: Flow, run_flow: RunFlow, value: Any) -> None:
    calls: list[Any] = []

    @flow.task(map_over="items", retries=3, retry_wait=0)
    def each(items: Any) -> Any:
        calls.append(items)
        return items

    @flow.task
    def after(each: Any) -> Any:
        return each

    result = run_flow(flow, {"items": value}, raise_on_failure=False)
    task = result.tasks["each"]
    assert task.status is TaskStatus.FAILED
    assert isinstance(task.error, MapError)
    assert isinstance(task.error, FlowError) and isinstance(task.error, ValueError)
    assert "'each'" in str(task.error) and "items" in str(task.error)
    assert task.attempts == 0 and task.elements == []
    assert result.tasks["after"].status is TaskStatus.SKIPPED
    assert calls == []


def test_zipped_parameters_of_unequal_length_are_a_map_error_naming_the_lengths(
        flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over=("names", "sizes"))
    def pair(names: str, sizes: int) -> str:
        return f"{names}={sizes}"

    result = run_flow(flow, {"names": ["a", "b", "c"], "sizes": [1, 2]},
                      raise_on_failure=False)
    error = result.tasks["pair"].error
    assert isinstance(error, MapError)
    assert error.lengths == (3, 2) and error.parameters == ("names", "sizes")
    assert "names: 3" in str(error) and "sizes: 2" in str(error)
    ok = run_flow(flow, {"names": ["a", "b"], "sizes": [1, 2]})
    assert ok.results["pair"] == ["a=1", "b=2"]


def test_each_element_has_its_own_retries_and_a_failed_element_fails_the_task(
        flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over="items", retries=2, retry_wait=0)
    def each(items: int) -> int:
        if items == 3:
            raise ValueError(f"bad {items}")
        attempt = current_task()
        if items == 1 and attempt is not None and attempt.attempt == 1:
            raise RuntimeError("flaky once")
        return items

    @flow.task
    def after(each: list[int]) -> int:
        return len(each)

    result = run_flow(flow, {"items": [0, 1, 2, 3]}, raise_on_failure=False)
    task = result.tasks["each"]
    elements = task.elements
    assert [e.status for e in elements] == [TaskStatus.COMPLETED, TaskStatus.COMPLETED,
                                            TaskStatus.COMPLETED, TaskStatus.FAILED]
    assert [e.attempts for e in elements] == [1, 2, 1, 3]
    assert task.attempts == 7
    assert task.status is TaskStatus.FAILED and isinstance(task.error, ValueError)
    assert str(elements[3].error) == "bad 3"
    assert result.tasks["after"].status is TaskStatus.SKIPPED
    assert "each" not in result.results
    trace = result.context.execution_trace
    retries = [e for e in trace if e["action"] == "task_retry"]
    assert sorted(e["details"]["index"] for e in retries) == [1, 3, 3]
    outcomes = [e for e in trace if e["task_id"] == "each" and e["action"] != "task_retry"]
    assert [e["action"] for e in outcomes] == ["task_failed"]


def test_produces_writes_each_key_once_with_the_list_of_element_values(
        flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over="paths", produces=["sizes"])
    def measure(paths: str) -> dict[str, int]:
        return {"sizes": len(paths)}

    @flow.task
    def report(sizes: list[int]) -> int:
        return sum(sizes)

    result = run_flow(flow, {"paths": ["a", "bb", "ccc"]})
    assert result.results["report"] == 6
    assert result.context.shared_state["sizes"] == [1, 2, 3]
    assert result.context.delta("measure") == {"sizes": [1, 2, 3]}
    assert list(result.context.records) == ["measure", "report"]
    assert [e["task_id"] for e in result.context.previous_results] == ["measure", "report"]
    assert result.context.previous_results[0]["result"] == [{"sizes": 1}, {"sizes": 2},
                                                            {"sizes": 3}]


def test_a_failed_mapped_task_writes_no_produced_key(flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over="paths", produces=["sizes"])
    def measure(paths: str) -> dict[str, int]:
        if paths == "bad":
            raise OSError("unreadable")
        return {"sizes": len(paths)}

    result = run_flow(flow, {"paths": ["a", "bad"]}, raise_on_failure=False)
    assert result.tasks["measure"].status is TaskStatus.FAILED
    assert "sizes" not in result.context.shared_state


def test_other_parameters_are_bound_once_and_passed_to_every_element(
        flow: Flow, run_flow: RunFlow) -> None:
    @flow.task
    def settings() -> dict[str, int]:
        return {"scale": 3}

    @flow.task(map_over="value", bind={"value": "key:values"})
    def scale(value: int, settings: dict[str, int], *, offset: int = 1) -> int:
        return value * settings["scale"] + offset

    result = run_flow(flow, {"values": (1, 2, 3)})
    assert result.results["scale"] == [4, 7, 10]
    assert result.tasks["scale"].elements is not None


@pytest.mark.in_process
def test_with_max_concurrency_elements_of_one_task_run_at_once(flow: Flow) -> None:
    barrier = threading.Barrier(3, timeout=10)

    @flow.task(map_over="items")
    def wait_for_the_others(items: int) -> int:
        barrier.wait()  # only returns once three elements run at the same time
        return items

    result = flow.run({"items": [1, 2, 3]}, max_concurrency=3)
    assert result.results["wait_for_the_others"] == [1, 2, 3]


def test_a_timeout_applies_to_each_element(flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over="items", timeout=60)
    def each(items: int) -> int:
        return items + 1

    result = run_flow(flow, {"items": [1, 2]})
    assert result.results["each"] == [2, 3]


def test_observers_see_the_map_and_each_element(flow: Flow, run_flow: RunFlow) -> None:
    fan_out(flow)
    events: list[Any] = []
    run_flow(flow, {"count": 3}, observers=[events.append])
    mapped = [e for e in events if isinstance(e, TaskMapped)]
    assert [(e.task_id, e.elements) for e in mapped] == [("square", 3)]
    finished = [e for e in events if isinstance(e, ElementFinished)]
    assert sorted(e.index for e in finished) == [0, 1, 2]
    assert all(e.status is TaskStatus.COMPLETED for e in finished)
    last = [e for e in events if isinstance(e, TaskFinished) and e.task_id == "square"]
    assert len(last) == 1 and last[0].attempts == 3
    assert sorted(a.index for a in last[0].attempt_times) == [0, 1, 2]


@pytest.mark.one_at_a_time
def test_a_critical_element_failure_cancels_the_elements_not_started(
        flow: Flow, run_flow: RunFlow) -> None:
    from flowdsl import Priority

    @flow.task(map_over="items", priority=Priority.CRITICAL)
    def each(items: int) -> int:
        if items == 1:
            raise ValueError("stop")
        return items

    result = run_flow(flow, {"items": [0, 1, 2]}, raise_on_failure=False)
    statuses = [e.status for e in result.tasks["each"].elements]
    assert statuses == [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED]
    assert result.tasks["each"].status is TaskStatus.FAILED
    assert result.status is RunStatus.FAILED


def test_a_mapped_task_over_a_mapped_result_waits_for_the_whole_list(
        flow: Flow, run_flow: RunFlow) -> None:
    @flow.task(map_over="items")
    def double(items: int) -> int:
        return items * 2

    @flow.task(map_over="double")
    def plus_one(double: int) -> int:
        return double + 1

    result = run_flow(flow, {"items": [1, 2, 3]})
    assert result.results["plus_one"] == [3, 5, 7]
    assert result.summary["elements"] == 6


def test_the_progress_bar_counts_elements(flow: Flow) -> None:
    from flowdsl.observers.progress import ProgressObserver

    fan_out(flow)
    progress = ProgressObserver(delay=3600)
    seen: list[tuple[int, int]] = []

    def watch(event: Any) -> None:
        if isinstance(event, TaskFinished):
            seen.append((progress._done, progress._total))

    flow.run({"count": 4}, observers=[progress, watch])
    assert seen == [(1, 3), (1 + 4 + 1, 3 + 4), (7, 7)]


def test_attempt_spans_of_elements_carry_their_index(flow: Flow) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from flowdsl.observers import OpenTelemetryObserver

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fan_out(flow)
    flow.run({"count": 3}, observers=[OpenTelemetryObserver(provider)])
    attempts = [s for s in exporter.get_finished_spans() if s.name == "flowdsl.attempt"
                and s.attributes["flowdsl.task_id"] == "square"]
    assert sorted(s.attributes["flowdsl.index"] for s in attempts) == [0, 1, 2]
    tasks = [s for s in exporter.get_finished_spans() if s.name == "flowdsl.task"]
    assert [s.attributes["flowdsl.task_id"] for s in tasks].count("square") == 1


def test_a_skipped_mapped_task_reports_no_element(flow: Flow, run_flow: RunFlow) -> None:
    @flow.task
    def broken() -> list[int]:
        raise OSError("no list")

    @flow.task(map_over="broken")
    def each(broken: int) -> int:
        return broken

    result = run_flow(flow, raise_on_failure=False)
    assert result.tasks["each"].status is TaskStatus.SKIPPED
    assert result.tasks["each"].elements == []
    assert result.tasks["broken"].elements is None
