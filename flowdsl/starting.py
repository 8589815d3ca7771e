"""How a call to `Flow.run` / `Flow.arun` becomes a `Run`: check the call, open the run in the
store when one is given (start or resume), and build the `Run` with its observers."""

from __future__ import annotations

import time
from random import getrandbits as _randbits
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from .calling import check_call, check_inputs, check_resources, choose_executor
from .compiling.plan import Plan
from .executors import Executor
from .executors.base import adrive, drive
from .executors.loop import in_helper_thread, loop_running, run_on_new_loop
from .observers.hooks import hook_observer
from .observers.logging import LoggingObserver, logging_enabled
from .running.events import Event, Observer
from .running.runtime import Run
from .running.strategies import ContextPreservationStrategy, IncrementalContextStrategy

if TYPE_CHECKING:  # the store loads lazily (sqlite3)
    from .flow import Flow
    from .store.journal import RunJournal

__all__ = ["new_run_id", "start_run", "RunSide", "RUN_SIDE"]


#: The strategy of a run that names none (it holds its bound only: one serves every run).
_DEFAULT_STRATEGY = IncrementalContextStrategy()


def new_run_id() -> str:
    """A run id that sorts by start time: UTC timestamp to the microsecond, then 6 random hex
    digits (`random`'s generator: seeded from the OS, reseeded in a forked child).

    (The digits are sliced from ``str``/``hex`` of the number plus a leading 1: a format spec
    such as ``:06d`` costs ~1,500 instructions to parse, and ``os.urandom`` is a system call:
    ~2.5 µs per run together; issue 16.)"""
    micros = str(time.time_ns() // 1000)  # since the epoch: the seconds, then six digits
    seconds = micros[:-6]
    last = _last_second  # (one tuple read: another thread may replace it meanwhile)
    text = last[1] if last[0] == seconds else _second_text(seconds)
    return f"{text}{micros[-6:]}Z-{hex(_randbits(24) | 0x1000000)[3:]}"


def _second_text(seconds: str) -> str:
    """``YYYYmmddTHHMMSS`` of a UTC second (its digits since the epoch), kept for the runs
    started in the same second (a pure function of its argument: ~1 µs per run less)."""
    global _last_second
    text = time.strftime("%Y%m%dT%H%M%S", time.gmtime(int(seconds)))
    _last_second = (seconds, text)
    return text


_last_second: tuple[str, str] = ("", "")


def start_run(
    flow: Flow,
    executor: Executor,
    initial: Mapping[str, Any] | None,
    context_strategy: ContextPreservationStrategy | None,
    run_id: str | None,
    observers: Iterable[Observer | Callable[[Event], None]] | None,
    store: Any = None,
    resume: str | None = None,
    force: bool = False,
    targets: Iterable[str] | None = None,
    resources: Mapping[str, Any] | None = None,
    cache: bool = True,
) -> Run:
    """Check the call, open the run (in the store, when given) and build the `Run`."""
    if resume is not None and store is not None and targets is None:
        from .store.opening import stored_targets  # a target run resumes as one

        targets = stored_targets(store, resume) or None
    plan = flow.compile(targets)
    if hasattr(executor, "check_plan"):  # e.g. handlers that must pickle, before the store
        executor.check_plan(plan)
    started = perf_counter()  # the run's wall clock: opening the store counts
    check_call(initial, run_id, store, resume)
    live = check_resources(plan, initial, resources)
    journal: RunJournal | None = None
    if store is None:
        initial = {} if initial is None else initial
        check_inputs(plan, initial, live)
        run_id = run_id or new_run_id()
    else:
        journal = _open_journal(flow, plan, store, initial, run_id, resume, force, live)
        journal.open_time = perf_counter() - started
        initial, run_id = journal.inputs, journal.run_id
    watchers = list(observers or ())
    if logging_enabled():
        watchers.append(LoggingObserver())
    hooks = hook_observer(plan, flow.hooks, flow.hook_scopes() if flow._includes else None)
    if hooks is not None:
        watchers.append(hooks)
    # (positional: a Python class's keyword arguments go through a dict; ~1,500 instructions)
    run = Run(
        plan,
        initial,
        run_id,
        context_strategy if context_strategy is not None else _DEFAULT_STRATEGY,
        watchers,  # observers
        journal,
        started,
        # history: read only by adaptive scheduling (N > 1), so only then computed
        journal.history if journal is not None else flow.metrics.durations,
        live,  # resources
        cache,
    )
    if journal is not None and journal.restored:
        run.restore_completed(journal.restored)
    return run


def _open_journal(flow: Flow, plan: Plan, store: Any, initial: Mapping[str, Any] | None,
                  run_id: str | None, resume: str | None, force: bool,
                  resources: Mapping[str, Any]) -> RunJournal:
    """Start (or resume) the run in the store; a store made from a path is closed when the
    run ends."""
    from .store import SqlStore, open_store  # sqlite3 is imported only when a store is used

    owned = not isinstance(store, SqlStore)
    if owned:  # a path, or a postgresql:// DSN
        store = open_store(store)
    try:
        journal: RunJournal = store.open_run(
            plan, flow=flow.name, serializer=flow.serializer,
            run_id=run_id or new_run_id(), inputs=initial, resume=resume, force=force,
            check_inputs=lambda given: check_inputs(plan, given, resources),
        )
    except BaseException:
        if owned:
            store.close()
        raise
    journal.owns_store = owned
    return journal


class RunSide(NamedTuple):
    """What ``flow.run`` and ``flow.arun`` call on the run side, imported once by
    `flowdsl.flow` on the first run (``import flowdsl`` stays light) and kept: four
    function-level imports cost ~2.5 µs per run (issue 16)."""

    choose_executor: Callable[..., Executor]
    start_run: Callable[..., Run]
    drive: Callable[..., Any]
    adrive: Callable[..., Any]
    in_helper_thread: Callable[..., Any]
    loop_running: Callable[[], bool]
    run_on_new_loop: Callable[..., Any]


RUN_SIDE = RunSide(choose_executor, start_run, drive, adrive, in_helper_thread, loop_running,
                   run_on_new_loop)
