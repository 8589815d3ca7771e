"""The progress bar's ETA: from the medians of earlier runs' task durations (the run store's),
none without history. Driven through the observer itself; the CLI's bar is in test_cli.py."""

from __future__ import annotations

import io
import statistics
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from flowdsl import Flow, RunStarted, SqliteStore, TaskFinished, TaskStarted, TaskStatus
from flowdsl.observers.progress import ProgressObserver, expected_durations


class Screen(io.StringIO):
    """A terminal's screen: what rich drew, with an event set once ``wanted`` was drawn."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted = wanted
        self.drawn = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.wanted in self.getvalue():
            self.drawn.set()
        return written


def terminal(screen: Screen) -> Console:
    return Console(file=screen, force_terminal=True, width=160, color_system=None)


def three_steps(waits: dict[str, Any] | None = None) -> Flow:
    """extract -> transform -> load; ``waits["transform"]`` (a callable) runs inside transform."""
    flow = Flow("three")
    waits = waits or {}

    @flow.task
    def extract() -> int:
        return 1

    @flow.task
    def transform(extract: int) -> int:
        if "transform" in waits:
            waits["transform"]()
        return extract + 1

    @flow.task
    def load(transform: int) -> int:
        return transform

    return flow


def test_the_eta_is_the_expected_time_of_the_tasks_not_finished() -> None:
    history = {"a": [1.0, 3.0, 2.0], "b": [10.0], "gone": [99.0]}
    observer = ProgressObserver(terminal(Screen("")), delay=3600, history=history)
    observer.on_event(RunStarted(run_id="r", flow="f", total_tasks=3, to_run=("a", "b", "c")))
    # a: median 2; b: 10; c has no history: the median of the known medians (2, 10) = 6
    assert observer.eta() == pytest.approx(18.0)
    observer.on_event(TaskStarted(run_id="r", task_id="a"))
    during = observer.eta()
    assert during is not None and 16.0 <= during <= 18.0  # a counts for what remains of it
    observer.on_event(TaskFinished(run_id="r", task_id="a", status=TaskStatus.COMPLETED,
                                   attempts=1, duration=2.0))
    assert observer.eta() == pytest.approx(16.0)
    observer.on_event(TaskFinished(run_id="r", task_id="b", status=TaskStatus.SKIPPED,
                                   attempts=0, duration=0.0))  # settled without starting
    assert observer.eta() == pytest.approx(6.0)
    observer.close()


def test_no_history_no_eta() -> None:
    observer = ProgressObserver(terminal(Screen("")), delay=3600, history={})
    observer.on_event(RunStarted(run_id="r", flow="f", total_tasks=1, to_run=("a",)))
    assert observer.eta() is None
    observer.close()
    assert expected_durations({"other": [1.0]}, ["a"]) == {}  # history of other tasks only


def test_the_eta_comes_from_the_store_history_and_is_drawn(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    for _ in range(3):
        three_steps().run(store=str(path))
    with SqliteStore(path) as store:
        history = store.durations("three")
    assert sorted(history) == ["extract", "load", "transform"] and all(
        len(d) == 3 for d in history.values())
    screen = Screen("ETA ")
    observer = ProgressObserver(terminal(screen), delay=0, history=history)
    seen: list[float | None] = []

    def wait_for_the_bar() -> None:
        seen.append(observer.eta())
        assert screen.drawn.wait(30), screen.getvalue()

    with SqliteStore(path) as store:
        three_steps({"transform": wait_for_the_bar}).run(store=store, observers=[observer])

    # inside transform: what remains of transform's median, plus load's
    transform, load = (statistics.median(history[t]) for t in ("transform", "load"))
    assert seen[0] is not None and load <= seen[0] <= load + transform + 1e-9
    assert "ETA 0:00:0" in screen.getvalue()


def test_without_history_the_bar_shows_no_eta(tmp_path: Path) -> None:
    screen = Screen("running transform")
    observer = ProgressObserver(terminal(screen), delay=0, history={})

    def wait_for_the_bar() -> None:
        assert screen.drawn.wait(30), screen.getvalue()

    with SqliteStore(tmp_path / "runs.db") as store:
        three_steps({"transform": wait_for_the_bar}).run(
            store=store, observers=[observer])
        assert store.durations("three")  # this run's history, for the next one

    assert "running transform" in screen.getvalue() and "ETA" not in screen.getvalue()


def test_a_resumed_run_expects_only_the_tasks_it_still_runs(tmp_path: Path) -> None:
    """Restored tasks are done: the ETA counts the others only."""
    path = str(tmp_path / "runs.db")
    marker = tmp_path / "fixed"
    flow = Flow("resumed")

    @flow.task
    def first() -> int:
        return 1

    @flow.task
    def second(first: int) -> int:
        if not marker.exists():
            raise RuntimeError("not yet")
        return first

    failed = flow.run(store=path, raise_on_failure=False)
    marker.touch()
    observer = ProgressObserver(terminal(Screen("")), delay=3600,
                                history={"first": [100.0], "second": [1.0]})
    etas: list[float | None] = []
    started: list[RunStarted] = []

    def after_the_bar(event: Any) -> None:  # runs after the observer saw the same event
        if isinstance(event, RunStarted):
            started.append(event)
            etas.append(observer.eta())

    flow.run(store=path, resume=failed.run_id, observers=[observer, after_the_bar])

    assert started[0].restored == 1 and started[0].to_run == ("second",)
    assert etas == [pytest.approx(1.0)]  # first (100 s) is restored: not expected any more
