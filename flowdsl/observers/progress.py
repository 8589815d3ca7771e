"""A progress bar (rich) fed by runtime events: tasks done/total, the task running, elapsed.
Each element of a mapped task counts as one more step (the total grows when the map starts).

    from flowdsl.observers.progress import ProgressObserver
    flow.run(inputs, observers=[ProgressObserver()])

It draws nothing unless its console is a terminal, and nothing for a run shorter than
``delay`` seconds (0.5 by default): a timer started with the run shows the bar then, so a
long first task shows it too. Passive, like every observer; events may come from several
threads (concurrent runs), so its state is guarded by a lock. rich is imported here only,
never by ``import flowdsl``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..running.events import (ElementFinished, RunFinished, RunStarted, TaskFinished,
                              TaskMapped, TaskRetrying, TaskStarted)

__all__ = ["ProgressObserver"]


class ProgressObserver:
    """Show a run's progress on a terminal once it has lasted ``delay`` seconds."""

    def __init__(self, console: Console | None = None, *, delay: float = 0.5) -> None:
        self.console = console if console is not None else Console()
        self.delay = delay
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
            elif isinstance(event, TaskRetrying):
                self._running[event.task_id] = None
            elif isinstance(event, TaskFinished):
                self._running.pop(event.task_id, None)
                self._done += 1
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
