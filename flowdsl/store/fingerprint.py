"""Stable fingerprints of tasks: the same in every process and under every hash seed.

A task's fingerprint covers its id, dependencies, policies (priority, requires, produces,
retries, wait, retry_on, timeout, serializer) and its handler's code: bytecode, constants
(nested code included) and names, not closure values; also, when declared, its ``run_if``
predicate's code, ``map_over``, ``trigger`` and ``bind``. Of the globals, it covers the values
of the module-level constants the code names (nested code included) that are of a plain type
(int, float, str, bytes, bool, None, and tuples/frozensets of them): changing such a constant
changes the fingerprint. Other globals (functions, modules, classes, mutable values) do not.
"""

from __future__ import annotations

import hashlib
import types
from typing import Any, Iterator, Mapping

__all__ = ["canonical", "task_fingerprint", "plan_fingerprints", "constants_read",
           "constants_changed"]


def _code(code: types.CodeType) -> list[Any]:
    return ["code", code.co_code.hex(), [canonical(c) for c in code.co_consts],
            list(code.co_names), code.co_argcount, code.co_kwonlyargcount]


def canonical(value: Any, _depth: int = 0) -> Any:
    """A JSON-able description of ``value`` that does not depend on addresses or hash seeds."""
    if _depth > 20:
        return "..."
    if value is None or isinstance(value, (bool, int, float, str)):
        return [type(value).__name__, repr(value)]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, types.CodeType):
        return _code(value)
    if isinstance(value, (tuple, list)):
        return [type(value).__name__, [canonical(v, _depth + 1) for v in value]]
    if isinstance(value, (set, frozenset)):
        return [type(value).__name__, sorted(repr(canonical(v, _depth + 1)) for v in value)]
    if isinstance(value, dict):
        return ["dict", sorted((repr(k), canonical(v, _depth + 1)) for k, v in value.items())]
    if isinstance(value, type):
        return ["type", f"{value.__module__}.{value.__qualname__}"]
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):  # functions and lambdas: their code, not their closure
        return ["function", getattr(value, "__qualname__", ""), _code(code)]
    if hasattr(value, "__dict__"):  # strategy objects (tenacity waits/retries), partials...
        return [f"{type(value).__module__}.{type(value).__qualname__}",
                canonical(vars(value), _depth + 1)]
    if hasattr(value, "__slots__"):
        return [type(value).__qualname__,
                [canonical(getattr(value, s, None), _depth + 1) for s in value.__slots__]]
    return ["object", type(value).__qualname__]


_CONSTANT_TYPES = (type(None), bool, int, float, str, bytes)


def _is_constant(value: Any, depth: int = 0) -> bool:
    """int, float, str, bytes, bool, None, and tuples/frozensets of them (nested too)."""
    if type(value) in _CONSTANT_TYPES:
        return True
    if type(value) in (tuple, frozenset) and depth < 20:
        return all(_is_constant(item, depth + 1) for item in value)
    return False


def _names(code: types.CodeType, found: set[str]) -> set[str]:
    """The names ``code`` and its nested code objects use (globals among them)."""
    found.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _names(const, found)
    return found


def global_constants(fn: Any) -> list[Any]:
    """``[name, canonical value]`` of each module-level constant ``fn``'s code reads by name,
    sorted by name: the globals its own code (nested code included) names, when their value
    is of a plain type (`_is_constant`)."""
    code = getattr(fn, "__code__", None)
    module_globals = getattr(fn, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(module_globals, dict):
        return []
    found = []
    for name in sorted(_names(code, set())):
        value = module_globals.get(name, _ABSENT)
        if value is not _ABSENT and _is_constant(value):
            found.append([name, canonical(value)])
    return found


_ABSENT = object()


def _handler(fn: Any) -> Any:
    if isinstance(getattr(fn, "__code__", None), types.CodeType):
        constants = global_constants(fn)
        if constants:  # only then: fingerprints of handlers that read none are unchanged
            return [*canonical(fn), ["globals", constants]]
        return canonical(fn)
    wrapped = getattr(fn, "__wrapped__", None)  # an included task's key renaming
    if wrapped is not None:
        return ["wrapped", type(fn).__qualname__, _handler(wrapped),
                canonical(getattr(fn, "keys", None))]
    func = getattr(fn, "func", None)  # functools.partial
    if func is not None:
        return ["partial", _handler(func), canonical(getattr(fn, "args", ())),
                canonical(getattr(fn, "keywords", {}))]
    call = getattr(type(fn), "__call__", None)
    return ["callable", f"{type(fn).__module__}.{type(fn).__qualname__}",
            canonical(call) if call is not None else None]


def task_fingerprint(step: Any, serializer: str) -> str:
    """The hex sha256 of one step's identity, policies and code."""
    parts = [
        step.id, list(step.dependencies), step.priority, list(step.requires), list(step.produces),
        step.retries, canonical(step.retry_wait), canonical(step.retry_on), step.timeout,
        serializer, _handler(step.handler),
    ]
    # second-wave declarations, only when used: fingerprints of flows without them are unchanged
    spec = getattr(step, "spec", None)
    run_if = getattr(step, "run_if", None)
    if run_if is not None:
        parts.append(["run_if", _handler(run_if)])
    if tuple(getattr(step, "map_over", None) or ()):
        parts.append(["map_over", list(step.map_over)])
    if getattr(step, "trigger", "all_succeeded") != "all_succeeded":
        parts.append(["trigger", step.trigger])
    if spec is not None and getattr(spec, "bind", None):
        parts.append(["bind", [[p, s if isinstance(s, str) else getattr(s, "__qualname__", "?")]
                               for p, s in spec.bind]])
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def plan_fingerprints(plan: Any, serializers: Mapping[str, str]) -> dict[str, str]:
    """Task id -> fingerprint for every step of ``plan``."""
    return {step.id: task_fingerprint(step, serializers[step.id]) for step in plan.steps}


def _functions(fn: Any) -> Iterator[Any]:
    """``fn`` and what it wraps (an included task's renaming, a partial)."""
    for _ in range(10):
        if fn is None:
            return
        yield fn
        fn = getattr(fn, "__wrapped__", None) or getattr(fn, "func", None)


#: (a module's globals, a name, the value it had): one module constant a handler reads
ConstantRead = tuple[dict[str, Any], str, Any]


def constants_read(plan: Any) -> list[ConstantRead]:
    """The module constants the plan's handlers and predicates read, with their values now:
    what `constants_changed` checks, so that a fingerprint computed once per plan follows a
    constant reassigned later in the same process (a notebook cell run again)."""
    found: list[ConstantRead] = []
    for step in plan.steps:
        for fn in (*_functions(step.handler), *_functions(getattr(step, "run_if", None))):
            code = getattr(fn, "__code__", None)
            module_globals = getattr(fn, "__globals__", None)
            if not isinstance(code, types.CodeType) or not isinstance(module_globals, dict):
                continue
            for name in _names(code, set()):
                value = module_globals.get(name, _ABSENT)
                if value is not _ABSENT and _is_constant(value):
                    found.append((module_globals, name, value))
    return found


def constants_changed(reads: list[ConstantRead]) -> bool:
    """Whether a constant of `constants_read` was reassigned since (O(constants read))."""
    return any(module_globals.get(name, _ABSENT) is not value
               for module_globals, name, value in reads)
