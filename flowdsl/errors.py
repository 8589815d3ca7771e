"""Every error flowdsl raises; each subclasses :class:`FlowError` and, where it fits, a builtin.

Messages name the task and key at fault. A handler's own exception is never wrapped:
these types only describe what flowdsl itself refused or observed.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

__all__ = [
    "FlowError",
    "DefinitionError",
    "CycleError",
    "UnknownDependencyError",
    "DuplicateTaskError",
    "MissingInputError",
    "MissingOutputError",
    "TaskTimeoutError",
    "RunFailedError",
    "ContextPrunedError",
    "SerializationError",
    "ResumeError",
    "StoreError",
    "MapError",
    "did_you_mean",
]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` when a close match exists, else ``""``."""
    import difflib  # only when an error is being reported

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class FlowError(Exception):
    """Base class of every error flowdsl raises."""


class DefinitionError(FlowError, ValueError):
    """The flow's definition is invalid; raised before any task runs."""


class CycleError(DefinitionError):
    """The dependencies form a cycle; ``cycle`` lists its members, each feeding the next,
    the first repeated last."""

    def __init__(self, cycle: Sequence[str], detail: str = "") -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            "dependency cycle: " + " -> ".join(map(repr, self.cycle))
            + " (each must run before the next)" + detail
            + ": remove one of these dependencies"
        )


class UnknownDependencyError(DefinitionError):
    """A task depends on an id the flow does not have."""

    def __init__(self, task_id: str, dependency: str, known: Iterable[str], *,
                 where: str | None = None) -> None:
        self.task_id = task_id
        self.dependency = dependency
        super().__init__(
            (where or f"task {task_id!r} depends on") + f" unknown task {dependency!r}"
            + did_you_mean(dependency, known)
        )


class DuplicateTaskError(DefinitionError):
    """Two tasks of one flow share an id."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"task id {task_id!r} is declared twice; pass id=... to tell them apart"
        )


class MissingInputError(FlowError, LookupError):
    """A context key the flow needs was not supplied by the caller."""

    def __init__(self, missing: Mapping[str, Sequence[str]], tasks: Iterable[str] = ()) -> None:
        self.missing = {key: tuple(readers) for key, readers in missing.items()}
        task_ids = list(tasks)
        parts = []
        for key, readers in self.missing.items():
            part = f"{key!r} (read by {', '.join(repr(r) for r in readers)})"
            if task_ids:  # a misspelt parameter meant to name a task
                close = did_you_mean(key, task_ids)
                if close:
                    part += close.replace("did you mean ", "did you mean task ", 1)
            parts.append(part)
        keys = list(self.missing)
        reminder = (f"a task that returns {keys[0]!r} must declare produces=[{keys[0]!r}]"
                    if len(keys) == 1 else
                    "a task that returns one of these keys must declare it in produces=[...]")
        super().__init__(
            "missing input " + "; ".join(parts) + ": pass it in flow.run({...}) (" + reminder
            + ")")

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class MissingOutputError(FlowError, LookupError):
    """A task declared ``produces=[key]`` but its result does not hold that key."""

    def __init__(self, task_id: str, key: str, result: object) -> None:
        self.task_id = task_id
        self.key = key
        if isinstance(result, dict) or hasattr(result, "keys"):
            why = f"its result has keys {sorted(map(str, result.keys()))!r}"
        else:
            why = f"its result is a {type(result).__name__}, not a mapping"
        super().__init__(f"task {task_id!r} declares produces={key!r} but {why}")

    def __str__(self) -> str:
        return str(self.args[0])


class TaskTimeoutError(FlowError, TimeoutError):
    """An attempt ran longer than the task's ``timeout``."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"task {task_id!r} timed out after {timeout:g} s")


class RunFailedError(FlowError, RuntimeError):
    """A run ended FAILED (raised by ``flow.run()`` unless ``raise_on_failure=False``, and by
    ``RunResult.raise_for_status()``); chained to the first task error. ``result`` is the
    whole `RunResult`."""

    def __init__(self, message: str, result: object = None) -> None:
        self.result = result
        super().__init__(message)


class ContextPrunedError(FlowError, KeyError):
    """A snapshot needs a task record that was pruned (or never kept: a task cancelled in
    flight keeps no record)."""

    def __init__(self, task_id: str, pruned: str | None = None, cancelled: bool = False) -> None:
        self.task_id = task_id
        self.pruned = pruned or task_id
        if cancelled:
            why = "was cancelled in flight, so it keeps no record"
        else:
            why = "was pruned (raise max_context_items to keep it)"
        if self.pruned == task_id:
            msg = f"the record of task {task_id!r} {why}"
        else:
            msg = (f"cannot rebuild the snapshot of task {task_id!r}: task {self.pruned!r}, "
                   f"which wrote since, {why}")
        super().__init__(msg)

    def __str__(self) -> str:
        return str(self.args[0])


class UntrackedWriteError(FlowError, RuntimeError):
    """A shared-state write came from a thread of no task (a thread a handler started) while
    several tasks were in flight, so it cannot be given to the task that made it."""

    def __init__(self, key: object, in_flight: tuple[str, ...]) -> None:
        self.key = key
        self.in_flight = in_flight
        tasks = ", ".join(map(repr, in_flight)) or "none"
        super().__init__(
            f"shared-state write of key {key!r} from a thread that runs no task (tasks in "
            f"flight: {tasks}): start the handler's threads with "
            f"contextvars.copy_context().run(...) so the write belongs to its task")


class SerializationError(FlowError, TypeError):
    """A value cannot be stored with the serializer the flow or task declares."""


class ResumeError(FlowError, RuntimeError):
    """A run cannot be resumed as asked."""


class StoreError(FlowError, RuntimeError):
    """The run store failed or holds something it cannot decode."""


class MapError(FlowError, ValueError):
    """A mapped task's values cannot be mapped: a value that is not iterable (or is a str,
    bytes or mapping), or zipped parameters of unequal lengths. ``task_id``, ``parameters``
    and ``lengths`` (None for a value that has none) say which."""

    def __init__(self, task_id: str, parameters: Sequence[str],
                 lengths: Sequence[int | None], why: str) -> None:
        self.task_id = task_id
        self.parameters = tuple(parameters)
        self.lengths = tuple(lengths)
        super().__init__(f"task {task_id!r} cannot map over {', '.join(self.parameters)}: {why}")


def error_text(exc: BaseException) -> str:
    """``"TypeName: message"``: how an error is shown in the trace and the run store."""
    return f"{type(exc).__name__}: {exc}"
