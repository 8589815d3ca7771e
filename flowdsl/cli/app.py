"""The `flowdsl` command: run, plan, graph, runs, show and bench, over the library.

Exit codes: 0 the run succeeded; 1 it failed or was cancelled, or the run store failed
during the run; 2 usage errors (bad TARGET, bad --set, a missing input), definition errors
and a refused resume. An error is one line on stderr (with the traceback under
``--log-level DEBUG``).
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

import click
from rich.console import Console

from .wording import cli_wording
from ..errors import DefinitionError, MissingInputError, ResumeError, StoreError
from ..flow import Flow
from ..status import RunStatus
from . import render
from .inputs import optional_inputs, unread_warnings
from .target import UsageProblem, load_flow, read_inputs

__all__ = ["main"]

DEFAULT_STORE = os.path.join(".flowdsl", "runs.db")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

USAGE, FAILED = 2, 1


class Failure(click.ClickException):
    """An error the command reports in one line (``Error: ...``) before exiting 2."""

    exit_code = USAGE  # a class attribute (click >= 8.5 types it as a ClassVar)

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class StoreFailure(Failure):
    """The run store failed: exit 1."""

    exit_code = FAILED


@contextmanager
def reporting(debug: bool = False) -> Iterator[None]:
    """Turn the errors a user can cause into one-line messages and exit codes."""
    try:
        yield
    except click.ClickException:
        raise
    except (UsageProblem, DefinitionError, ResumeError, MissingInputError, StoreError) as exc:
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        message = str(exc)
        if isinstance(exc, MissingInputError):
            message += " (on the command line: --set KEY=VALUE or --input FILE.json)"
        elif isinstance(exc, (DefinitionError, ResumeError, StoreError)):
            message = f"{type(exc).__name__}: {cli_wording(message)}"
        raise (StoreFailure if isinstance(exc, StoreError) else Failure)(message) from exc


def stdout_console() -> Console:
    """rich on stdout; when stdout is not a terminal, wide enough not to cut lines."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=200)
    return console


def setup_logging(level: str) -> None:
    """loguru lines from flowdsl (and the user's code) to stderr at ``level``."""
    from loguru import logger

    logger.remove()
    # looked up per message: while the progress bar is up, sys.stderr is its proxy
    def write(message: str) -> None:
        sys.stderr.write(message)

    logger.add(write, level=level,
               colorize=sys.stderr.isatty(),
               format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
                      "{extra[run_id]} <level>{message}</level>")
    logger.configure(extra={"run_id": ""})
    logger.enable("flowdsl")


def is_dsn(path: str) -> bool:
    """A ``postgresql://`` / ``postgres://`` DSN rather than an SQLite file's path."""
    return path.startswith(("postgresql://", "postgres://"))


def store_exists(path: str) -> bool:
    """Is there a store to read? (A PostgreSQL server is asked when opened.)"""
    return is_dsn(path) or os.path.exists(os.path.expanduser(path))


def open_store(path: str, *, create: bool) -> Any:
    """A `flowdsl.SqliteStore` on ``path`` (``create=False`` refuses a missing file and opens
    the store read-only, so listing and showing work in a read-only directory too), or a
    `flowdsl.PostgresStore` for a ``postgresql://`` / ``postgres://`` DSN."""
    from flowdsl.store import SqliteStore

    if is_dsn(path):
        from flowdsl.store.postgres import PostgresStore  # needs the `postgres` extra

        return PostgresStore(path)
    path = os.path.expanduser(path)
    if not create and not os.path.exists(path):
        raise UsageProblem(f"no run store at {path} (set --store or FLOWDSL_STORE)")
    return SqliteStore(path, readonly=not create)


# -- the commands -----------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="flowdsl", prog_name="flowdsl")
def main() -> None:
    """Run, inspect and measure flowdsl pipelines.

    TARGET is path/to/file.py[:variable] or package.module[:variable]; the variable may be
    left out when the module holds exactly one Flow.
    """


target_argument = click.argument("target", metavar="TARGET")
set_option = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                          help="An input of the flow; VALUE is JSON when valid JSON, else a "
                               "string. Repeatable.")
input_option = click.option("--input", "input_file", metavar="FILE.json",
                            help="A JSON object of inputs (--set entries override it).")
target_option = click.option("--target", "targets", multiple=True, metavar="ID",
                              help="Only this task and its ancestors (repeatable).")
store_option = click.option("--store", "store_path", envvar="FLOWDSL_STORE", show_envvar=True,
                            default=DEFAULT_STORE, show_default=True, metavar="PATH|DSN",
                            help="The run store: an SQLite file, or a PostgreSQL DSN "
                                 "(postgresql://user@host/db).")


@main.command()
@target_argument
@set_option
@input_option
@target_option
@store_option
@click.option("--resume", metavar="RUN_ID", help="Resume this run: its completed tasks are "
              "restored, the others run.")
@click.option("--force", is_flag=True, help="With --resume: accept a changed flow or changed "
              "inputs (completed tasks whose code and inputs changed run again).")
@click.option("--no-cache", "no_cache", is_flag=True, help="Neither read nor write the cache "
              "across runs for this run (tasks declared cache= run).")
@click.option("--run-id", metavar="ID", help="The new run's id (default: generated, sortable "
              "by time).")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(LOG_LEVELS, case_sensitive=False), metavar="LEVEL",
              help="loguru lines to stderr from this level up (TRACE, DEBUG, INFO, SUCCESS, "
                   "WARNING, ERROR, CRITICAL); DEBUG also shows tracebacks.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record (and summary) as "
              "JSON instead of tables.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no task table: the "
              "summary only.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run up to N ready tasks at once (default 1; on Dask: the cluster's threads).")
@click.option("--otel", is_flag=True, help="Trace the run with OpenTelemetry (OTLP exporter "
              "configured by the OTEL_EXPORTER_OTLP_* variables; pip install \"flowdsl[otel]\" "
              "opentelemetry-exporter-otlp).")
@click.option("--executor", "executor_name", default="local", show_default=True,
              metavar="local|dask|ADDRESS",
              help="Where handlers run: this process, a LocalCluster started for the run "
                   "('dask'), or the Dask scheduler at ADDRESS (tcp://host:8786).")
def run(target: str, settings: tuple[str, ...], input_file: str | None,
        targets: tuple[str, ...], store_path: str,
        resume: str | None, force: bool, run_id: str | None, log_level: str, as_json: bool,
        quiet: bool, concurrency: int | None, otel: bool, executor_name: str,
        no_cache: bool = False) -> None:
    """Run the flow TARGET, recording it in the run store."""
    log_level = log_level.upper()
    debug = log_level in ("TRACE", "DEBUG")
    with reporting(debug):
        if run_id is not None and not run_id.strip():
            raise UsageProblem("--run-id must not be empty")
        if resume is not None and run_id is not None and resume != run_id:
            raise UsageProblem(f"--run-id {run_id} and --resume {resume} name different runs")
        if force and resume is None:
            raise UsageProblem("--force goes with --resume RUN_ID")
        flow, again = load_flow(target)
        initial = read_inputs(input_file, settings)
        compiled = flow.compile(targets or None)  # definition errors before the store is touched
        for warning in unread_warnings(compiled, initial):
            click.echo(warning, err=True)
        setup_logging(log_level)
        console = stdout_console()
        observers = []
        if otel:
            observers.append(otel_observer())
        executor = make_executor(executor_name, concurrency)
        store = open_store(store_path, create=True)
        try:
            if not quiet and not as_json and console.is_terminal:
                from ..observers.progress import ProgressObserver

                # the ETA comes from earlier runs of this flow in the store (none: no ETA)
                observers.insert(0, ProgressObserver(console,
                                                     history=store.durations(flow.name)))
            result = _run(flow, initial, store, observers, resume=resume, force=force,
                          run_id=run_id or resume, debug=debug, executor=executor,
                          concurrency=concurrency, targets=targets, cache=not no_cache)
            if as_json:
                record = store.get_run(result.run_id)
                record["summary"] = result.summary
                click.echo(render.as_json(record))
            else:
                _print_run(console, result, quiet=quiet, again=again, store_path=store_path)
        finally:
            for observer in observers:
                observer.close()
            store.close()
    if result.status is not RunStatus.SUCCEEDED:
        sys.exit(FAILED)


def otel_observer() -> Any:
    """An `OpenTelemetryObserver` exporting over OTLP when that exporter is installed (set up
    by the standard ``OTEL_EXPORTER_OTLP_*`` variables), else to the global tracer provider."""
    try:
        from ..observers.otel import OpenTelemetryObserver, otlp_provider
    except ImportError as exc:
        raise UsageProblem(f"--otel needs OpenTelemetry: pip install \"flowdsl[otel]\" ({exc})"
                           ) from exc
    return OpenTelemetryObserver(otlp_provider())


def make_executor(name: str, concurrency: int | None) -> Any:
    """``local`` -> None (flow.run picks by --concurrency); ``dask`` or an address -> Dask."""
    if name == "local":
        return None
    try:
        from ..executors.dask import DaskExecutor
    except ImportError as exc:
        raise UsageProblem(f"--executor {name} needs Dask: pip install \"flowdsl[dask]\" "
                           f"({exc})") from exc
    return DaskExecutor(None if name == "dask" else name, max_concurrency=concurrency)


def _run(flow: Flow, initial: dict[str, Any], store: Any, observers: list[Any], *,
         resume: str | None, force: bool, run_id: str | None, debug: bool,
         executor: Any = None, concurrency: int | None = None,
         targets: tuple[str, ...] = (), cache: bool = True) -> Any:
    options: dict[str, Any] = {"store": store, "observers": observers, "run_id": run_id,
                               "raise_on_failure": False}  # a failed run is shown, exit 1
    if not cache:
        options["cache"] = False
    if targets:
        options["targets"] = targets
    if executor is not None:
        options["executor"] = executor
    elif concurrency is not None:
        options["max_concurrency"] = concurrency
    if resume is not None:
        options.update(resume=resume, force=force)
    try:
        # on resume without inputs on the command line, the run's stored inputs are used
        return flow.run(initial if initial or resume is None else None, **options)
    except KeyboardInterrupt as exc:
        result = getattr(exc, "flowdsl_result", None)
        if result is None:
            raise
        return result  # CANCELLED, what completed is kept: exit 1 like any failed run


def _print_run(console: Console, result: Any, *, quiet: bool, again: str,
               store_path: str) -> None:
    if not quiet:
        render.emit(console, render.task_rows(
            (task_id, task.status.value, task.attempts, task.duration,
             render.error_text(task.error) if task.error is not None else task.reason)
            for task_id, task in result.tasks.items()))
    head = f"run {result.run_id} of flow {result.flow!r} {result.status.value}: "
    lines = render.summary_lines(result.summary)
    console.print(head + lines[0], markup=False, soft_wrap=True)
    if not quiet:
        console.print(lines[1], markup=False, soft_wrap=True)
    if result.status is not RunStatus.SUCCEEDED:
        store = "" if store_path == DEFAULT_STORE else f" --store {shlex.quote(store_path)}"
        console.print(f"resume with: flowdsl run {shlex.quote(again)} --resume "
                      f"{shlex.quote(result.run_id)}{store}",
                      markup=False, soft_wrap=True)


@main.command()
@target_argument
@click.option("--schedule", is_flag=True, help="Also show the expected durations and critical "
              "paths adaptive scheduling will use (history from the run store).")
@target_option
@store_option
def plan(target: str, schedule: bool, targets: tuple[str, ...], store_path: str) -> None:
    """Show the ordered plan of TARGET and the inputs it needs."""
    with reporting():
        flow, _ = load_flow(target)
        compiled = flow.compile(targets or None)
        explained = None
        if schedule:
            store = open_store(store_path, create=False) if store_exists(store_path) else None
            explained = flow.explain_schedule(store=store)
    console = stdout_console()
    render.emit(console, render.plan_table(compiled))
    if explained is not None:
        render.emit(console, render.schedule_table(explained))
        where = "the run store's history" if explained["history_known"] else "no history yet"
        console.print(f"critical path ({where}): " + " -> ".join(explained["critical_path"])
                      + f" = {explained['critical_path_length'] * 1e3:.1f} ms",
                      markup=False, soft_wrap=True)

    def say(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    if compiled.inputs:
        say("required inputs:")
        for key in compiled.inputs:
            readers = ", ".join(compiled.input_readers.get(key, ()))
            say(f"  {key} (read by {readers})")
    else:
        say("required inputs: none")
    optional = optional_inputs(compiled)
    if optional:
        say("optional inputs (each has a default; set with --set KEY=VALUE):")
        for key, defaults in optional.items():
            uses = ", ".join(f"{task} default {default!r}" for task, default in defaults)
            say(f"  {key} ({uses})")


@main.command()
@target_argument
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid flowchart or Graphviz DOT.")
@target_option
def graph(target: str, fmt: str, targets: tuple[str, ...]) -> None:
    """Print the DAG of TARGET (edges go from upstream to downstream)."""
    with reporting():
        flow, _ = load_flow(target)
        compiled = flow.compile(targets or None)
    click.echo(render.mermaid(compiled) if fmt == "mermaid" else render.dot(compiled))


@main.command()
@store_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many runs, newest first (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def runs(store_path: str, limit: int, as_json: bool) -> None:
    """List the runs in the store, newest first."""
    with reporting():
        if not store_exists(store_path):
            if as_json:
                click.echo("[]")
            else:
                click.echo(f"no runs yet (no run store at {store_path})")
            return
        store = open_store(store_path, create=False)
        try:
            found = store.runs(limit=limit + 1 if limit else None)
        finally:
            store.close()
    more = bool(limit) and len(found) > limit
    found = found[:limit] if limit else found
    if as_json:
        click.echo(render.as_json(found))
        return
    if not found:
        click.echo(f"no runs in {store_path}")
        return
    console = stdout_console()
    render.emit(console, render.runs_table(found))
    if more:
        console.print(f"(the latest {limit}; --limit 0 shows all)", markup=False, soft_wrap=True)


@main.command()
@click.argument("run_id", metavar="RUN_ID")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def show(run_id: str, store_path: str, as_json: bool) -> None:
    """Show one run: its sessions, its tasks (each with its reason: restored, "cached from run
    ID", skipped...), and each failed task's error and traceback."""
    with reporting():
        store = open_store(store_path, create=False)
        try:
            try:
                record = store.get_run(run_id)
            except KeyError:
                raise UsageProblem(f"no run {run_id!r} in {store.label}") from None
        finally:
            store.close()
    if as_json:
        click.echo(render.as_json(record))
        return
    render.print_record(stdout_console(), record)


@main.command()
@click.argument("run_id", metavar="RUN_ID")
@store_option
@click.option("--output", "-o", default="report.html", show_default=True, metavar="FILE",
              help="Where to write the HTML report.")
@click.option("--target", metavar="TARGET", default=None,
              help="The run's flow: its dependencies are drawn as the graph's edges "
                   "instead of those the store recorded with the run (needed only for runs "
                   "recorded before the store kept them).")
def report(run_id: str, store_path: str, output: str, target: str | None) -> None:
    """Write one run's HTML report: graph, timeline of attempts, tasks, errors, inputs."""
    with reporting():
        dependencies = None
        if target is not None:
            flow, _ = load_flow(target)
            dependencies = {step.id: step.dependencies for step in flow.compile().steps}
        store = open_store(store_path, create=False)
        try:
            try:
                store.report(run_id, output, dependencies=dependencies)
            except KeyError:
                raise UsageProblem(f"no run {run_id!r} in {store_path}") from None
        finally:
            store.close()
    click.echo(f"wrote {output}")


@main.command()
@target_argument
@click.option("--repeat", "-n", default=10, show_default=True, type=click.IntRange(min=1),
              help="How many runs to measure.")
@set_option
@input_option
def bench(target: str, repeat: int, settings: tuple[str, ...], input_file: str | None) -> None:
    """Measure the task-switching overhead of TARGET (runs it N times, without a store)."""
    from ..measure import measure_overhead

    with reporting():
        flow, _ = load_flow(target)
        initial = read_inputs(input_file, settings)
        report = measure_overhead(flow, initial, repeat=repeat)
    console = stdout_console()
    last = report.runs[-1]
    console.print(f"flow {flow.name!r}: {repeat} runs, {report.tasks} tasks ran per run "
                  f"(of {last['total_tasks']})", markup=False, soft_wrap=True)
    per_task = report.handler_time / report.tasks if report.tasks else 0.0
    render.emit(console, render.table(
        ("", "median", "min", "max"),
        [("overhead per task (µs)", f"{report.median * 1e6:.2f}", f"{report.min * 1e6:.2f}",
          f"{report.max * 1e6:.2f}"),
         ("time in handlers per task (µs)", f"{per_task * 1e6:.2f}", "", ""),
         ("time in handlers per run (ms)", f"{report.handler_time * 1e3:.3f}", "", "")]))
    bad = last["failed_tasks"] + last.get("skipped_tasks", 0) + last.get("cancelled_tasks", 0)
    if bad:
        click.echo(f"note: the flow did not succeed ({last['failed_tasks']} failed, "
                   f"{last.get('skipped_tasks', 0)} skipped, {last.get('cancelled_tasks', 0)} "
                   "cancelled per run); the figures cover the tasks that ran", err=True)

