"""Per-step argument binders, built once by the compiler and called by the runtime.

A binder takes the run's `TaskContext` and returns ``(args, kwargs, reads)``: the handler's
arguments and the declared inputs it was given (key -> value, kept in the task's record).
The common shapes (no parameters, only upstream results) get binders that do nothing but
dictionary look-ups.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Mapping, Sequence, Tuple

import attrs

from ..errors import MissingInputError
from ..declaring.spec import EMPTY, MISSING
from .plan import Binder

__all__ = ["Source", "Input", "make_binder", "NO_READS"]

NO_READS = EMPTY
_NO_KWARGS: dict[str, Any] = {}


#: Where one parameter's value comes from: ``(kind, parameter name, keyword-only)``, with
#: kind "result" (the upstream task named like the parameter), "key" (the context key named
#: like it), "context" or "task_input". Plain tuples: a compile makes one per parameter.
Source = Tuple[str, str, bool]


@attrs.frozen
class Input:
    """A declared context input and how to resolve it: from its producer, else by look-up."""

    key: str
    producer: str | None
    default: Any = MISSING


def _resolve(context: Any, inp: Input, task_id: str) -> Any:
    if inp.producer is not None:
        return context.results[inp.producer][inp.key]
    value = context.shared_state.get(inp.key, MISSING)
    if value is MISSING:
        value = context.data.get(inp.key, inp.default)
        if value is MISSING:
            raise MissingInputError({inp.key: (task_id,)})
    return value


def make_binder(
    task_id: str,
    sources: Sequence[Source],
    inputs: Sequence[Input],
    dependencies: Sequence[str],
    results_only: bool,
) -> Binder:
    """Build the binder of one step (``results_only``: every parameter is a positional
    upstream result, as the compiler found while binding)."""
    no_kwargs = _NO_KWARGS
    if not inputs and results_only:
        if not sources:
            no_args: tuple[Any, ...] = ()
            return lambda context: (no_args, no_kwargs, NO_READS)
        if len(sources) == 1:
            upstream = sources[0][1]
            return lambda context: ((context.results[upstream],), no_kwargs, NO_READS)
        get_results = itemgetter(*(name for _, name, _ in sources))
        return lambda context: (get_results(context.results), no_kwargs, NO_READS)

    sources = tuple(sources)
    inputs = tuple(inputs)
    dependencies = tuple(dependencies)
    any_keyword = any(keyword for _, _, keyword in sources)

    def bind(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]:
        reads = {inp.key: _resolve(context, inp, task_id) for inp in inputs}
        results = context.results
        values = []
        for kind, name, _ in sources:
            if kind == "result":
                values.append(results[name])
            elif kind == "key":
                values.append(reads[name])
            elif kind == "context":
                values.append(context)
            else:  # task_input: the seed program's single dict
                task_input = {
                    "context": context,
                    "shared_state": context.shared_state,
                    "previous_results": context.previous_results,
                    **reads,
                }
                for dep in dependencies:
                    task_input[f"{dep}_result"] = results[dep]
                task_input["idempotency_key"] = f"{context.task_id}:{task_id}"
                values.append(task_input)
        if not any_keyword:
            return tuple(values), no_kwargs, reads or NO_READS
        args = tuple(v for v, (_, _, keyword) in zip(values, sources) if not keyword)
        kwargs = {name: v for v, (_, name, keyword) in zip(values, sources) if keyword}
        return args, kwargs, reads or NO_READS

    return bind
