"""Hooks (`on_success`, `on_failure`, `on_retry`) per task and per flow: observers of the
runtime's events, run on the driver after the state change is final; a hook that raises warns
and never changes the run."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from flowdsl import (DefinitionError, Flow, RunStatus, SqliteStore, TaskFinished, TaskRetrying,
                     TaskStatus, current_task)


class Calls:
    """Records every hook call as (hook name, event), from any thread of the driver."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.thread_ids: set[int] = set()
        self._lock = threading.Lock()

    def hook(self, name: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            with self._lock:
                self.calls.append((name, event))
                self.thread_ids.add(threading.get_ident())

        record.__qualname__ = name
        return record

    def names(self, task_id: str | None = None) -> list[str]:
        return [n for n, e in self.calls if task_id is None or e.task_id == task_id]


def flaky_once() -> str:
    """Fails its first attempt, then succeeds (the attempt number travels to Dask workers)."""
    attempt = current_task()
    assert attempt is not None
    if attempt.attempt == 1:
        raise ConnectionError("first attempt")
    return "ok"


def broken() -> None:
    raise ValueError("bad row 7")


def test_each_hook_gets_its_typed_event(run_flow: Any) -> None:
    calls = Calls()
    flow = Flow("hooks")
    flow.task(id="load", on_success=calls.hook("load.success"),
              on_failure=calls.hook("load.failure"))(lambda: {"rows": 3})
    flow.task(id="flaky", retries=1, retry_wait=0.25, on_retry=calls.hook("flaky.retry"),
              on_success=calls.hook("flaky.success"))(flaky_once)
    flow.task(id="check", on_failure=calls.hook("check.failure"),
              on_success=calls.hook("check.success"))(broken)

    result = run_flow(flow, raise_on_failure=False)

    assert result.status is RunStatus.FAILED
    by_name = dict(calls.calls)
    assert sorted(by_name) == ["check.failure", "flaky.retry", "flaky.success", "load.success"]
    success = by_name["load.success"]
    assert isinstance(success, TaskFinished)
    assert success.task_id == "load" and success.status is TaskStatus.COMPLETED
    assert success.result == {"rows": 3} and success.error is None
    failure = by_name["check.failure"]
    assert isinstance(failure, TaskFinished) and failure.status is TaskStatus.FAILED
    assert isinstance(failure.error, ValueError) and str(failure.error) == "bad row 7"
    assert failure.error is result.tasks["check"].error  # the handler's own exception
    retry = by_name["flaky.retry"]
    assert isinstance(retry, TaskRetrying)
    assert isinstance(retry.error, ConnectionError) and retry.wait == 0.25
    assert by_name["flaky.success"].result == "ok"


def test_flow_hooks_run_for_every_task_before_the_tasks_own(run_flow: Any) -> None:
    calls = Calls()
    flow = Flow("both", on_success=calls.hook("flow.success"),
                on_failure=calls.hook("flow.failure"), on_retry=calls.hook("flow.retry"))

    @flow.task(on_success=calls.hook("task.success"))
    def first() -> int:
        return 1

    @flow.task
    def second(first: int) -> int:
        return first + 1

    flow.task(id="flaky", retries=1, retry_wait=0, on_retry=calls.hook("task.retry"))(flaky_once)

    run_flow(flow)

    assert calls.names("first") == ["flow.success", "task.success"]
    assert calls.names("second") == ["flow.success"]
    assert calls.names("flaky") == ["flow.retry", "task.retry", "flow.success"]


def test_skipped_and_cancelled_tasks_fire_no_hook(run_flow: Any) -> None:
    calls = Calls()
    flow = Flow("quiet", on_success=calls.hook("success"), on_failure=calls.hook("failure"),
                on_retry=calls.hook("retry"))
    flow.task(id="bad")(broken)

    @flow.task(depends_on=["bad"], on_failure=calls.hook("downstream.failure"))
    def downstream() -> None: ...

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["downstream"].status is TaskStatus.SKIPPED
    assert [(n, e.task_id) for n, e in calls.calls] == [("failure", "bad")]


@pytest.mark.one_at_a_time
def test_a_cancelled_task_fires_no_hook(run_flow: Any) -> None:
    calls = Calls()
    flow = Flow("stop", on_success=calls.hook("success"), on_failure=calls.hook("failure"))
    flow.task(id="critical", priority=1)(broken)

    @flow.task(priority=3)
    def later() -> None: ...

    result = run_flow(flow, raise_on_failure=False)

    assert result.tasks["later"].status is TaskStatus.CANCELLED
    assert [(n, e.task_id) for n, e in calls.calls] == [("failure", "critical")]


def test_a_raising_hook_warns_and_never_changes_the_run(run_flow: Any) -> None:
    def explode(event: Any) -> None:
        raise RuntimeError(f"hook blew up on {event.task_id}")

    calls = Calls()
    flow = Flow("robust", on_success=explode)

    @flow.task(on_success=calls.hook("after"), on_retry=explode)
    def one() -> int:
        return 1

    @flow.task
    def two(one: int) -> int:
        return one + 1

    with pytest.warns(RuntimeWarning) as caught:
        result = run_flow(flow)

    assert result.status is RunStatus.SUCCEEDED and result.results == {"one": 1, "two": 2}
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("on_success" in m and "explode" in m and "'one'" in m
               and "hook blew up on one" in m for m in messages), messages
    assert any("'two'" in m and "explode" in m for m in messages), messages
    assert calls.names("one") == ["after"]  # the task's hook still runs after the flow's raised


def test_hooks_run_after_the_state_change_is_final_and_journalled(tmp_path: Path,
                                                                  run_flow: Any) -> None:
    seen: list[tuple[str | None, str]] = []
    path = tmp_path / "runs.db"

    def look(event: TaskFinished) -> None:
        with SqliteStore(path) as store:
            task = store.get_run(event.run_id)["tasks"][event.task_id]
        seen.append((task["status"], event.status.value))

    flow = Flow("journalled", on_success=look, on_failure=look)
    flow.task(id="fine")(lambda: 1)
    flow.task(id="bad")(broken)

    run_flow(flow, store=str(path), raise_on_failure=False)

    assert sorted(seen) == [("completed", "completed"), ("failed", "failed")]


def test_hooks_run_on_the_driver(run_flow: Any) -> None:
    """A hook records into this process's memory (also with Dask workers in other processes)."""
    calls = Calls()
    flow = Flow("driver", on_success=calls.hook("success"))
    for n in range(4):
        flow.task(id=f"t{n}")(lambda: None)

    run_flow(flow)

    assert sorted(e.task_id for _, e in calls.calls) == ["t0", "t1", "t2", "t3"]


def test_hooks_never_fire_for_restored_tasks_and_are_not_fingerprinted(tmp_path: Path) -> None:
    """Adding a hook to a completed task changes nothing a resume checks (no force needed),
    and the restored task fires no hook; the task that runs again does."""
    marker = tmp_path / "fixed"
    calls = Calls()

    def build(with_hooks: bool) -> Flow:
        flow = Flow("resumable", **({"on_success": calls.hook("flow.success")}
                                    if with_hooks else {}))

        def first() -> int:
            return 1

        def second(first: int) -> int:
            if not marker.exists():
                raise RuntimeError("not yet")
            return first + 1

        hooks: dict[str, Any] = {"on_success": calls.hook("first.success")} if with_hooks else {}
        flow.task(**hooks)(first)
        flow.task(second)
        return flow

    path = str(tmp_path / "runs.db")
    failed = build(False).run(store=path, raise_on_failure=False)
    assert failed.tasks["second"].status is TaskStatus.FAILED
    marker.touch()

    resumed = build(True).run(store=path, resume=failed.run_id)

    assert resumed.tasks["first"].reason == "restored from the run store"
    assert [(n, e.task_id) for n, e in calls.calls] == [("flow.success", "second")]


@pytest.mark.parametrize("keyword", ["on_success", "on_failure", "on_retry"])
def test_a_hook_that_is_not_callable_is_a_definition_error(keyword: str) -> None:
    flow = Flow("checked")
    with pytest.raises(DefinitionError, match=f"task 'extract'.*{keyword}.*'notify'"):
        flow.task(id="extract", **{keyword: "notify"})(lambda: None)
    with pytest.raises(DefinitionError, match=f"flow 'named'.*{keyword}"):
        Flow("named", **{keyword: 42})
    assert len(flow) == 0  # nothing was registered


def test_no_hooks_no_hook_observer() -> None:
    """A run without hooks subscribes nothing for them (no event is built for them)."""
    from flowdsl.observers.hooks import Hooks, hook_observer

    flow = Flow("plain")
    flow.task(id="a")(lambda: 1)
    assert hook_observer(flow.compile(), Hooks()) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flow.run().status is RunStatus.SUCCEEDED


def test_an_included_flows_hooks_follow_its_tasks(run_flow: Any) -> None:
    """An included flow keeps its hooks: the parent's run first, then the sub-flow's, then
    the task's own; the gathering task "<prefix>" is the parent's."""
    calls = Calls()
    cleaning = Flow("cleaning", on_success=calls.hook("cleaning.success"),
                    on_failure=calls.hook("cleaning.failure"))

    @cleaning.task(on_success=calls.hook("dedupe.success"))
    def dedupe(rows: list[int]) -> list[int]:
        return sorted(set(rows))

    parent = Flow("parent", on_success=calls.hook("parent.success"))
    parent.include(cleaning, prefix="clean", inputs={"rows": "raw"})

    @parent.task
    def total(clean: dict[str, list[int]]) -> int:
        return sum(clean["dedupe"])

    result = run_flow(parent, {"raw": [3, 1, 3]})

    assert result.results["total"] == 4
    assert calls.names("clean.dedupe") == ["parent.success", "cleaning.success",
                                           "dedupe.success"]
    assert calls.names("clean") == ["parent.success"]
    assert calls.names("total") == ["parent.success"]
    assert cleaning.run({"rows": [2, 2]}).results["dedupe"] == [2]  # still runs alone
    assert calls.names("dedupe")[-2:] == ["cleaning.success", "dedupe.success"]


def test_hooks_fire_for_cached_tasks(tmp_path: Path, run_flow: Any) -> None:
    """A task taken from the cache is a COMPLETED `TaskFinished` carrying the cached result:
    on_success fires for it (runs once caching, ``cache=True``, exists)."""
    import inspect

    if "cache" not in inspect.signature(Flow.task).parameters:
        pytest.skip("caching across runs (cache=True) is not in this build")
    calls = Calls()
    path = str(tmp_path / "runs.db")

    def build() -> Flow:
        flow = Flow("cached", on_success=calls.hook("flow.success"))
        flow.task(id="load", cache=True, on_success=calls.hook("load.success"))(
            lambda: [1, 2, 3])
        return flow

    run_flow(build(), store=path)
    calls.calls.clear()
    second = run_flow(build(), store=path)

    assert (second.tasks["load"].reason or "").startswith("cached from run ")
    assert calls.names("load") == ["flow.success", "load.success"]
    assert [e.result for _, e in calls.calls] == [[1, 2, 3], [1, 2, 3]]
