"""Per-step argument binders, built once by the compiler and called by the runtime.

A binder takes the run's `TaskContext` and returns ``(args, kwargs, reads)``: the handler's
arguments and the declared inputs it was given (key -> value, kept in the task's record; or
``args`` itself when the arguments are exactly the inputs' values, in the order of the step's
``inputs``: see `TaskRecord.reads`).
The common shapes (no parameters, only upstream results) get binders that do nothing but
dictionary look-ups.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Mapping, NamedTuple, Sequence, Tuple

from ..errors import MissingInputError
from ..declaring.spec import EMPTY, MISSING
from .plan import Binder, Reads

__all__ = ["Source", "Input", "make_binder", "results_binder", "single", "NO_READS"]

NO_READS = EMPTY
_NO_KWARGS: dict[str, Any] = {}


#: Where one parameter's value comes from: ``(kind, parameter name, keyword-only, ref)``,
#: with kind "result" (the upstream task ``ref``), "key" (the context key ``ref``), "context"
#: or "task_input"; ``ref`` is the parameter's name unless ``bind=`` says otherwise.
#: Plain tuples: a compile makes one per parameter.
Source = Tuple[str, str, bool, str]


class Input(NamedTuple):
    """A declared context input and how to resolve it: from its producer, else by look-up.

    Immutable. A NamedTuple, like `Step`: a compile makes one per declared input, and attrs'
    frozen ``__init__`` takes three times as long."""

    key: str
    producer: str | None
    default: Any = MISSING
    mapped: bool = False  # the producer is a mapped task: its result is a list of mappings


def _resolve(context: Any, inp: Input, task_id: str) -> Any:
    if inp.producer is not None:
        if inp.mapped:
            return [element[inp.key] for element in context.results[inp.producer]]
        return context.results[inp.producer][inp.key]
    return _look_up(context, inp, task_id)


def _resolve_tolerant(context: Any, inp: Input, task_id: str) -> Any:
    """Under ``none_failed`` / ``all_done``: a producer that did not complete gives the
    parameter's default, else None."""
    if inp.producer is not None:
        produced = context.results.get(inp.producer, MISSING)
        if produced is MISSING:
            return None if inp.default is MISSING else inp.default
        if inp.mapped:
            return [element[inp.key] for element in produced]
        return produced[inp.key]
    return _look_up(context, inp, task_id)


def _look_up(context: Any, inp: Input, task_id: str) -> Any:
    value = context.shared_state.get(inp.key, MISSING)
    if value is MISSING:
        value = context.data.get(inp.key, MISSING)
        if value is MISSING:  # a live object passed as resources= (never an input), else default
            value = getattr(context, "resources", EMPTY).get(inp.key, inp.default)
            if value is MISSING:
                raise MissingInputError({inp.key: (task_id,)})
    return value


def make_binder(
    task_id: str,
    sources: Sequence[Source],
    inputs: Sequence[Input],
    dependencies: Sequence[str],
    results_only: bool | None = None,
    tolerant: Mapping[str, Any] | None = None,
    included: Sequence[str] = (),
    shown: Mapping[str, str] | None = None,
) -> Binder:
    """Build the binder of one step (``results_only``: every parameter is a positional
    upstream result, when the caller already knows it). ``tolerant`` (parameter -> default)
    makes a binder for ``none_failed`` / ``all_done`` tasks: a dependency that did not
    complete gives the parameter's default, else None. ``included`` (the include prefixes of
    a copied task) and ``shown`` (context key -> name) make ``task_input`` show the names the
    sub-flow's handler was written with."""
    no_kwargs = _NO_KWARGS
    if results_only is None:
        results_only = all(kind == "result" and not keyword for kind, _, keyword, _ in sources)
    if not inputs and results_only and tolerant is None:
        return results_binder([ref for _, _, _, ref in sources])

    if tolerant is None and _all_produced(sources, inputs):
        return _produced_binder(sources, inputs)
    if tolerant is None and len(sources) == 1 and len(inputs) == 1 \
            and sources[0][0] == "key" and not sources[0][2] and inputs[0].producer is None:
        return _looked_up_binder(task_id, inputs[0])

    sources = tuple(sources)
    inputs = tuple(inputs)
    dependencies = tuple(dependencies)
    any_keyword = any(keyword for _, _, keyword, _ in sources)
    resolve = _resolve if tolerant is None else _resolve_tolerant
    prefix = ".".join(included) + "." if included else ""
    strip = len(prefix)
    fallback = {name: (None if default is MISSING else default)
                for name, default in (tolerant or {}).items()}

    def bind(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]:
        reads = {inp.key: resolve(context, inp, task_id) for inp in inputs}
        results = context.results
        values = []
        for kind, name, _, ref in sources:
            if kind == "result":
                if tolerant is None:
                    values.append(results[ref])
                else:
                    values.append(results.get(ref, fallback.get(name)))
            elif kind == "key":
                values.append(reads[ref])
            elif kind == "context":
                values.append(context)
            else:  # task_input: the seed program's single dict
                task_input = {
                    "context": context,
                    "shared_state": context.shared_state,
                    "previous_results": context.previous_results,
                    **(reads if not shown else {shown.get(k, k): v for k, v in reads.items()}),
                }
                for dep in dependencies:
                    if dep in results or tolerant is None:
                        name = dep[strip:] if strip and dep.startswith(prefix) else dep
                        task_input[f"{name}_result"] = results[dep]
                task_input["idempotency_key"] = f"{context.task_id}:{task_id}"
                values.append(task_input)
        if not any_keyword:
            return tuple(values), no_kwargs, reads or NO_READS
        args = tuple(v for v, (_, _, keyword, _) in zip(values, sources) if not keyword)
        kwargs = {name: v for v, (_, name, keyword, _) in zip(values, sources) if keyword}
        return args, kwargs, reads or NO_READS

    return bind


def _looked_up_binder(task_id: str, inp: Input) -> Binder:
    """The binder of a step whose one positional parameter is a declared input with no
    producer (a run input, or a key written to the shared state): `_look_up` inlined, none
    of the general binder's per-parameter dispatch (the first task of most flows; ~1 µs per
    run, issue 16)."""
    key = inp.key

    def bind(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]:
        value = context.shared_state.get(key, MISSING)
        if value is MISSING:
            value = context.data.get(key, MISSING)
            if value is MISSING:
                value = _look_up(context, inp, task_id)
        return (value,), _NO_KWARGS, {key: value}

    return bind


def _no_arguments(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]:
    return (), _NO_KWARGS, NO_READS


def single(binder: Binder, source: str, key: str | None) -> Binder:
    """Mark ``binder`` as one that binds one positional argument, ``results[source]`` (or
    its ``[key]``, a declared input: then the arguments are also its reads), and nothing
    else: the runtime reads that value itself rather than call it (`hot_fields` finds the
    mark; a Python call per task less, ~300 instructions; issue 16)."""
    binder.single = (source, key)  # type: ignore[attr-defined]
    return binder


def results_binder(upstream: Sequence[str]) -> Binder:
    """The binder of a step whose parameters are the positional results of ``upstream``
    tasks, in order: nothing but dictionary look-ups. (The lambdas read ``_NO_KWARGS`` and
    ``NO_READS`` as globals rather than closing over them: one cell per binder less for a
    10,000-task compile to allocate and the garbage collector to scan.)"""
    if not upstream:
        return _no_arguments
    if len(upstream) == 1:
        task = upstream[0]
        return single(lambda context: ((context.results[task],), _NO_KWARGS, NO_READS),
                      task, None)
    get_results = itemgetter(*upstream)
    return lambda context: (get_results(context.results), _NO_KWARGS, NO_READS)


def _all_produced(sources: Sequence[Source], inputs: Sequence[Input]) -> bool:
    """Whether every parameter is positional, an upstream result or a declared input, and
    every input has a producer whose result is not a list (plain loops: a compile asks this
    once per step with inputs)."""
    for kind, _, keyword, _ in sources:
        if keyword or (kind != "result" and kind != "key"):
            return False
    for inp in inputs:
        if inp.producer is None or inp.mapped:
            return False
    return True


def _produced_binder(sources: Sequence[Source], inputs: Sequence[Input]) -> Binder:
    """The binder of a step whose positional parameters are upstream results and declared
    inputs that each have a producer (the common shape of a ``produces`` chain): two
    dictionary look-ups per input, none of the general binder's per-parameter dispatch."""
    if len(sources) == 1 and len(inputs) == 1 and sources[0][0] == "key":
        key, producer = inputs[0].key, inputs[0].producer

        def bind_one(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Reads]:
            args = (context.results[producer][key],)
            return args, _NO_KWARGS, args  # its reads: the arguments, one per input

        assert producer is not None  # (`_all_produced`: every input has its producer)
        return single(bind_one, producer, key)
    no_kwargs = _NO_KWARGS
    produced = tuple((inp.key, inp.producer) for inp in inputs)
    from_result = tuple((kind == "result", ref) for kind, _, _, ref in sources)

    def bind(context: Any) -> tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]:
        results = context.results
        reads = {key: results[producer][key] for key, producer in produced}
        args = tuple(results[ref] if is_result else reads[ref] for is_result, ref in from_result)
        return args, no_kwargs, reads or NO_READS

    return bind
