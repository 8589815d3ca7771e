"""Checks of a run call before anything runs: its arguments, inputs and resources.

Resources are live objects a run hands to the parameters named like them (``resources=``).

A resource (a database connection, a client) is never stored, fingerprinted, hashed or
copied and is never an input of the run: a parameter named like it receives the object
itself. A resumed run needs its resources again (missing: `MissingInputError`).
"""

from __future__ import annotations

from typing import Any, Mapping

from .compiling.plan import Plan
from .errors import MissingInputError
from .executors import ConcurrentExecutor, Executor, SequentialExecutor

__all__ = ["check_call", "check_inputs", "check_resources", "choose_executor"]


def check_resources(plan: Plan, initial: Mapping[str, Any] | None,
                    resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """``resources`` as a dict, checked: names are strings, neither task ids nor inputs given
    as well (a `ValueError` naming the clash)."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise TypeError(f"resources= takes a mapping of name -> object, "
                        f"got {type(resources).__name__}")
    checked = dict(resources)
    for name in checked:
        if not isinstance(name, str) or not name:
            raise ValueError(f"resources=: a resource name must be a non-empty str, got {name!r}")
        if name in plan.index:
            raise ValueError(f"resources=: {name!r} is a task id of flow {plan.flow!r}; a "
                             "parameter of that name receives the task's result: rename it")
        if any(name in step.produces for step in plan.steps):
            raise ValueError(f"resources=: {name!r} is a key a task of flow {plan.flow!r} "
                             "produces; its readers receive the produced value: rename it")
        if initial is not None and name in initial:
            raise ValueError(f"{name!r} is given both as an input and in resources=: pass it "
                             "once (a resource is never stored)")
    return checked


def check_call(initial: Mapping[str, Any] | None, run_id: str | None, store: Any,
               resume: str | None) -> None:
    """The call's own arguments: a mapping of inputs, a run id, a store to resume from."""
    # (a dict passes without `isinstance` against the typing alias: ~0.35 µs per run)
    if initial is not None and type(initial) is not dict and not isinstance(initial, Mapping):
        raise TypeError(f"flow.run() takes a mapping of inputs, got {type(initial).__name__}")
    if run_id is not None and (not isinstance(run_id, str) or not run_id
                               or not run_id.encode("utf-8", "replace").decode() == run_id):
        raise ValueError(f"run_id must be a non-empty str of text, got {run_id!r}")
    if resume is not None and store is None:
        raise ValueError("resume= needs the run store the run was recorded in: pass store=")
    if resume is not None and run_id is not None and run_id != resume:
        raise ValueError(f"run_id={run_id!r} and resume={resume!r} disagree: pass one")


def check_inputs(plan: Plan, given: Mapping[str, Any],
                 resources: Mapping[str, Any] | None = None) -> None:
    """`MissingInputError` naming each input the caller did not give (as an input or a
    resource), and its readers."""
    if all(map(given.__contains__, plan.inputs)):  # (the usual answer, in C: no frame)
        return
    missing = {key: plan.input_readers[key] for key in plan.inputs
               if key not in given and not (resources and key in resources)}
    if missing:
        raise MissingInputError(missing, plan.order)


# The default executor holds nothing but its frozen `Means`: one serves every run (building
# it per run cost ~1 µs; issue 16).
_SEQUENTIAL = SequentialExecutor()


def choose_executor(executor: Executor | None, max_concurrency: int | None,
                    adaptive: bool) -> Executor:
    """The executor a run call asks for: the one given, else by ``max_concurrency``."""
    if executor is not None:
        if max_concurrency is not None and getattr(executor, "max_concurrency", None) not in (
                None, max_concurrency):
            raise ValueError(f"max_concurrency={max_concurrency} disagrees with {executor!r}")
        return executor
    if max_concurrency is None or max_concurrency == 1:
        return _SEQUENTIAL
    return ConcurrentExecutor(max_concurrency, adaptive=adaptive)
