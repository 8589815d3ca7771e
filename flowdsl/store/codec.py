"""Serializers for results and deltas: JSON through a fixed type table, or pickle on request.

JSON values come back equal and of the same type (tuples stay tuples, int dict keys stay
ints) or encoding fails with `SerializationError` naming the path and type. Decoding never
imports a class named in the store: only the types of the table below come back. Pickle is
used only where the flow or task declares ``serializer="pickle"`` (it runs code when loaded).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import uuid
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable

from ..running.context import DELETED
from ..errors import SerializationError, StoreError

__all__ = ["encode", "decode", "describe"]


TAG = "$flowdsl"

_PLAIN = (str, int, float, bool, type(None))
_TO_JSON: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("datetime", lambda v: v.isoformat()),
    dt.date: ("date", lambda v: v.isoformat()),
    dt.time: ("time", lambda v: v.isoformat()),
    dt.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    Decimal: ("decimal", str),
    uuid.UUID: ("uuid", str),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode("ascii")),
    type(Path()): ("path", str),
    PurePosixPath: ("pureposixpath", str),
    PureWindowsPath: ("purewindowspath", str),
}
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
    "path": Path,
    "pureposixpath": PurePosixPath,
    "purewindowspath": PureWindowsPath,
}


def _fail(where: str, path: str, value: Any, why: str = "") -> SerializationError:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    return SerializationError(
        f"{where}: cannot store {path} of type {kind} as JSON{why}; declare "
        "serializer='pickle' on the flow or the task to store it with pickle "
        "(pickle runs code when loaded: never resume a store from an untrusted source)"
    )


def _to_json(value: Any, path: str, where: str) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_to_json(v, f"{path}[{i}]", where) for i, v in enumerate(value)]
    if kind is dict:
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: _to_json(v, f"{path}[{k!r}]", where) for k, v in value.items()}
        return {TAG: "dict", "v": [
            [_to_json(k, f"{path} key {k!r}", where), _to_json(v, f"{path}[{k!r}]", where)]
            for k, v in value.items()
        ]}
    if kind is tuple or kind is set or kind is frozenset:
        items = value if kind is tuple else sorted(value, key=repr)
        return {TAG: kind.__name__, "v": [_to_json(v, f"{path}[{i}]", where)
                                          for i, v in enumerate(items)]}
    if value is DELETED:
        return {TAG: "deleted"}
    converter = _TO_JSON.get(kind)
    if converter is None:
        raise _fail(where, path, value)
    name, to_plain = converter
    return {TAG: name, "v": to_plain(value)}


def _from_json(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [_from_json(v) for v in value]
    if kind is not dict:
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: _from_json(v) for k, v in value.items()}
    if tag == "dict":
        return {_from_json(k): _from_json(v) for k, v in value["v"]}
    if tag in ("tuple", "set", "frozenset"):
        items = [_from_json(v) for v in value["v"]]
        return tuple(items) if tag == "tuple" else set(items) if tag == "set" else frozenset(items)
    if tag == "deleted":
        return DELETED
    return _FROM_JSON[tag](value["v"])  # KeyError for an unknown tag: reported by decode()


def encode(value: Any, serializer: str, where: str, path: str = "the result") -> bytes | str:
    """Encode ``value`` (JSON text, or pickle bytes); raise `SerializationError` naming
    ``where`` (the task) and the path of the value at fault."""
    if serializer == "pickle":
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"{where}: cannot pickle {path}: {exc}") from exc
    plain = _to_json(value, path, where)
    try:
        return json.dumps(plain, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # pragma: no cover - _to_json checked every type
        raise SerializationError(f"{where}: cannot store {path} as JSON: {exc}") from exc


def decode(data: bytes | str | None, codec: str, serializer: str, where: str) -> Any:
    """Decode a stored value with the serializer declared *now*; `StoreError` if they disagree
    or the value cannot be decoded."""
    if data is None:
        return None
    if codec != serializer:
        raise StoreError(
            f"{where}: the stored value was written with {codec!r} but the task now declares "
            f"serializer={serializer!r}; declare {codec!r} again to resume, or start a new run"
        )
    try:
        if codec == "pickle":
            if not isinstance(data, bytes):
                raise TypeError(f"a pickle is bytes, not {type(data).__name__}")
            return pickle.loads(data)  # noqa: S301 - opted in by serializer="pickle"
        return _from_json(json.loads(data))
    except Exception as exc:
        raise StoreError(f"{where}: cannot decode the stored value: {exc!r}") from exc


def describe(data: bytes | str | None, codec: str) -> Any:
    """A stored value for people (listing, showing): JSON decoded through the type table,
    pickle never loaded."""
    if data is None:
        return None
    if codec == "pickle":
        return f"<pickle value, {len(data)} bytes, not loaded>"
    try:
        return _from_json(json.loads(data))  # str or bytes both parse
    except Exception:
        return f"<undecodable {codec} value, {len(data)} bytes>"
