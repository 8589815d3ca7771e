"""The value types a flow declares for its run store.

The codec decodes a stored typed value only into a class the flow's code declares:
``Flow(types=[...])``, a handler's return annotation, and every class reachable from those
through dataclass / attrs / pydantic field annotations and the arguments of generic aliases
(``list[Point]``, ``dict[str, Frame]``, ``Optional[...]``, unions). Optional libraries (numpy,
pandas, pydantic) are recognised through ``sys.modules`` only: a value or annotation of theirs
means the library is already imported, so nothing is imported here.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import typing
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping

import attrs

from ..errors import DefinitionError

__all__ = ["type_name", "kind_of", "declared_types", "return_annotation", "KINDS"]

#: What the codec can store by kind, for messages.
KINDS = ("dataclasses, enum.Enum, attrs classes, pydantic v2 models, numpy arrays, "
         "pandas DataFrames and Series")


def type_name(cls: type) -> str:
    """``module.qualname``: how a typed value names its type in the store."""
    return f"{cls.__module__}.{cls.__qualname__}"


def kind_of(cls: object) -> str | None:
    """The codec's kind for class ``cls`` ("dataclass", "enum", "attrs", "pydantic",
    "ndarray", "dataframe", "series"), or None when it is none of them."""
    if not isinstance(cls, type):
        return None
    if issubclass(cls, enum.Enum):
        return "enum"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if attrs.has(cls):
        return "attrs"
    modules = sys.modules
    pydantic = modules.get("pydantic")
    if (pydantic is not None and issubclass(cls, pydantic.BaseModel)
            and hasattr(cls, "model_validate")):
        return "pydantic"
    numpy = modules.get("numpy")
    if numpy is not None and cls is numpy.ndarray:
        return "ndarray"
    pandas = modules.get("pandas")
    if pandas is not None:
        if cls is pandas.DataFrame:
            return "dataframe"
        if cls is pandas.Series:
            return "series"
    return None


def _field_annotations(cls: type, kind: str) -> list[Any]:
    """The annotations of a class's fields (lenient: an unresolvable one is left out)."""
    if kind == "pydantic":
        fields: Mapping[str, Any] = getattr(cls, "model_fields", {})
        return [f.annotation for f in fields.values()]
    if kind in ("dataclass", "attrs"):
        try:
            return list(typing.get_type_hints(cls).values())
        except Exception:  # a forward reference the class's module cannot resolve
            if kind == "attrs":
                return [a.type for a in attrs.fields(cls) if a.type is not None]
            return [f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)]
    return []


def _walk(annotation: Any, found: dict[str, type]) -> None:
    stack = [annotation]
    seen: list[Any] = []  # objects (not ids): an annotation built on the fly stays alive
    while stack:
        ann = stack.pop()
        if any(ann is s for s in seen):
            continue
        seen.append(ann)
        origin = typing.get_origin(ann)
        if origin is typing.Literal:
            continue
        stack.extend(typing.get_args(ann))
        if origin is not None:
            ann = origin  # list[Point] -> list; NDArray[...] -> numpy.ndarray
        kind = kind_of(ann)
        if kind is None:
            continue
        name = type_name(ann)
        if name not in found:
            found[name] = ann
            stack.extend(_field_annotations(ann, kind))


def return_annotation(handler: Callable[..., Any], task_id: str) -> Any:
    """The handler's return annotation resolved with `typing.get_type_hints` (None without
    one); unresolvable: `DefinitionError` naming the task."""
    fn = handler  # a bound method forwards these attributes to its function
    annotations = getattr(fn, "__annotations__", None)
    if not isinstance(annotations, dict) or "return" not in annotations:
        return None
    raw = annotations["return"]
    if not isinstance(raw, str) and not typing.get_args(raw) and getattr(
            raw, "__module__", None) == "builtins":
        return raw  # int, dict, str ...: nothing to resolve
    holder = SimpleNamespace(__annotations__={"return": raw})
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None) or ()
    names = dict(zip(code.co_freevars, cells)) if code is not None else {}
    local: dict[str, Any] = {}
    for name, cell in names.items():  # the names the handler's own code closes over
        try:
            local[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    try:
        return typing.get_type_hints(holder, globalns=getattr(fn, "__globals__", {}),
                                     localns=local)["return"]
    except Exception as exc:
        raise DefinitionError(
            f"task {task_id!r}: cannot resolve its return annotation {raw!r} "
            f"({type(exc).__name__}: {exc}); the run store decodes values only into the types "
            "the flow's code declares: import the type where the handler is defined, or "
            "remove the annotation") from None


def declared_types(roots: Iterable[Any]) -> dict[str, type]:
    """Every storable class reachable from ``roots`` (types or annotations), by name."""
    found: dict[str, type] = {}
    for root in roots:
        if root is not None:
            _walk(root, found)
    return found


def check_types(types: Iterable[Any], where: str) -> tuple[Any, ...]:
    """``Flow(types=[...])`` as a tuple; something that declares no storable type is a
    `DefinitionError`."""
    checked = (types,) if isinstance(types, type) else tuple(types)  # one type, or several
    for item in checked:
        if not declared_types([item]):
            raise DefinitionError(
                f"{where}: types={item!r} declares no type the run store can keep "
                f"({KINDS}; or a list/dict/Optional/Union of them)")
    return checked
