"""A progress bar (rich) fed by runtime events: tasks done/total, the task running, elapsed,
and an ETA when earlier runs' durations are known. Each element of a mapped task counts as one
more step (the total grows when the map starts).

    from flowdsl.observers.progress import ProgressObserver
    flow.run(inputs, observers=[ProgressObserver()])
    # with an ETA from the run store's history of this flow:
    flow.run(inputs, store=store, observers=[ProgressObserver(history=store.durations(flow.name))])

It draws nothing unless its console is a terminal, and nothing for a run shorter than
``delay`` seconds (0.5 by default): a timer started with the run shows the bar then, so a
long first task shows it too. Passive, like every observer; events may come from several
threads (concurrent runs), so its state is guarded by a lock. rich is imported here only,
never by ``import flowdsl``.

The ETA is the expected time of the tasks not yet finished: each task's expected duration is
the median of its recorded durations (``history``: task id -> durations, as
``store.durations(flow)`` gives them); a task without history counts as the median of those
with one; a running task counts for what remains of its expected duration. It assumes one task
at a time (with ``--concurrency`` it is an upper bound). Without history, no ETA is shown.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from rich.text import Text

from ..running.events import (ElementFinished, RunFinished, RunStarted, TaskFinished,
                              TaskMapped, TaskRetrying, TaskStarted)

__all__ = ["ProgressObserver", "expected_durations"]

#: What `ProgressObserver.eta` reads: (seconds expected for the tasks not started,
#: ((monotonic start, expected seconds) of each running task)); replaced whole, never mutated,
#: so the bar's refresh thread reads it without taking the observer's lock.
_Snapshot = tuple[float, tuple[tuple[float, float], ...]]


def expected_durations(history: Mapping[str, Sequence[float]],
                       task_ids: Sequence[str]) -> dict[str, float]:
    """Task id -> expected seconds: the median of its last 10 recorded durations; a task
    without history counts as the median of those with one. Empty without any history."""
    medians = {task: statistics.median(list(d)[-10:]) for task, d in history.items() if d}
    known = [medians[t] for t in task_ids if t in medians]
    if not known:
        return {}
    fallback = statistics.median(known)
    return {t: medians.get(t, fallback) for t in task_ids}


class _EtaColumn(ProgressColumn):
    """``ETA 0:00:12`` from the observer's expected durations; nothing without history."""

    def __init__(self, observer: ProgressObserver) -> None:
        super().__init__()
        self.observer = observer

    def render(self, task: Any) -> Text:
        eta = self.observer.eta()
        if eta is None:
            return Text("")
        seconds = int(eta + 0.999)
        return Text(f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
                    style="progress.remaining")


class ProgressObserver:
    """Show a run's progress on a terminal once it has lasted ``delay`` seconds."""

    def __init__(self, console: Console | None = None, *, delay: float = 0.5,
                 history: Mapping[str, Sequence[float]] | None = None) -> None:
        self.console = console if console is not None else Console()
        self.delay = delay
        #: task id -> earlier runs' durations (e.g. ``store.durations(flow.name)``)
        self.history = dict(history or {})
        self._expected: dict[str, float] = {}
        self._not_started = 0.0  # expected seconds of the tasks not started yet
        self._started_at: dict[str, float] = {}  # running task -> monotonic start
        self._has_eta = False
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._progress: Progress | None = None
        self._bar: TaskID | None = None
        self._flow = ""
        self._total = 0
        self._done = 0
        self._running: dict[str, None] = {}  # in start order
        self._finished = False

    @property
    def shown(self) -> bool:
        """Whether the bar has been drawn for this run."""
        return self._progress is not None

    def on_event(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
            return
        with self._lock:
            if isinstance(event, TaskStarted):
                self._running[event.task_id] = None
                self._start_expected(event.task_id)
            elif isinstance(event, TaskRetrying):
                self._running[event.task_id] = None
            elif isinstance(event, TaskFinished):
                self._running.pop(event.task_id, None)
                self._done += 1
                self._finish_expected(event.task_id)
            elif isinstance(event, TaskMapped):  # its elements are steps of their own
                self._total += event.elements
                self._done += event.restored
            elif isinstance(event, ElementFinished):
                self._done += 1
            elif isinstance(event, RunFinished):
                self._finished = True
            self._refresh()
        if isinstance(event, RunFinished):
            self.close()

    def _started(self, event: RunStarted) -> None:
        self.close()
        with self._lock:
            # tasks restored from a run store count as done (if the event says how many)
            self._flow, self._total = event.flow, event.total_tasks
            self._done = getattr(event, "restored", 0) or 0
            self._running.clear()
            self._finished = False
            self._expected = expected_durations(
                self.history, getattr(event, "to_run", ()) or ())
            self._has_eta = bool(self._expected)
            self._not_started = sum(self._expected.values())
            self._started_at = {}
            self._snap()
            if not self.console.is_terminal:
                return
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if self._finished or self._progress is not None:
                return
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[flow]}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                _EtaColumn(self),
                TextColumn("{task.description}"),
                console=self.console,
                transient=True,
                # log lines written to sys.stderr while the bar is up go above it, but only
                # when stderr is the terminal too (not when it is redirected to a file)
                redirect_stderr=_is_terminal(sys.stderr),
                redirect_stdout=False,
            )
            self._bar = self._progress.add_task("", total=self._total, flow=self._flow)
            self._refresh()
            self._progress.start()

    def _refresh(self) -> None:
        # caller holds the lock
        if self._progress is None or self._bar is None:
            return
        running = list(self._running)
        if not running:
            text = ""
        elif len(running) == 1:
            text = f"running {running[0]}"
        else:
            text = f"running {running[0]} and {len(running) - 1} more"
        self._progress.update(self._bar, completed=self._done, total=self._total,
                              description=text)

    # -- the ETA ----------------------------------------------------------------------------
    def eta(self) -> float | None:
        """Seconds the run is expected to take still, or None without history."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        not_started, running = snapshot
        now = time.monotonic()
        return not_started + sum(max(0.0, expected - (now - start)) for start, expected in running)

    def _start_expected(self, task_id: str) -> None:
        # caller holds the lock
        expected = self._expected.get(task_id)
        if expected is None or task_id in self._started_at:
            return
        self._not_started -= expected
        self._started_at[task_id] = time.monotonic()
        self._snap()

    def _finish_expected(self, task_id: str) -> None:
        # caller holds the lock; a task settled without starting leaves the not-started sum
        expected = self._expected.get(task_id)
        if expected is None:
            return
        if self._started_at.pop(task_id, None) is None:
            self._not_started -= expected
        del self._expected[task_id]
        self._snap()

    def _snap(self) -> None:
        # caller holds the lock
        if not self._has_eta:
            self._snapshot = None
            return
        self._snapshot = (max(0.0, self._not_started), tuple(
            (start, self._expected[t]) for t, start in self._started_at.items()))

    def close(self) -> None:
        """Stop the timer and take the bar down (the run ended, or was interrupted)."""
        with self._lock:
            self._finished = True
            timer, self._timer = self._timer, None
            progress, self._progress = self._progress, None
            self._bar = None
        if timer is not None:
            timer.cancel()
        if progress is not None:
            progress.stop()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
