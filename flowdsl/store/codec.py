"""Serializers for results, deltas and inputs: JSON through a fixed type table (plus the
typed values the flow's code declares), or pickle on request.

JSON values come back equal and of the same type (tuples stay tuples, int dict keys stay
ints, a `ZoneInfo` datetime keeps its zone, a lone surrogate stays itself) or encoding fails
with `SerializationError` naming the path and type. Decoding never imports a class named in
the store: only the types of the table below, and the declared types it is given
(``types``: ``module.qualname`` -> class, see `flowdsl.declaring.types`), come back. Pickle is
used only where the flow or task declares ``serializer="pickle"`` (it runs code when loaded).
"""

from __future__ import annotations

import base64
import importlib
import datetime as dt
import json
import pickle
import sys
import uuid
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from ..declaring.types import kind_of, type_name
from ..running.context import DELETED
from ..errors import SerializationError, StoreError
from .typed import NUMPY_SCALAR_KINDS, payload_of, size_of, value_of

__all__ = ["encode", "decode", "describe", "encode_for_hash", "same_encoding", "MAX_DEPTH",
           "Types", "NO_TYPES"]

#: name -> class: the types a flow declares (what typed values may decode into)
Types = Mapping[str, type]
NO_TYPES: Types = MappingProxyType({})
#: a value nested deeper than this fails its task (`SerializationError`), whatever the stack
MAX_DEPTH = 450

TAG = "$flowdsl"


def _datetime(value: dt.datetime) -> Any:
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key:
        return [value.isoformat(), zone.key]  # the zone itself, not only today's offset
    return value.isoformat()


def _datetime_from(value: Any) -> dt.datetime:
    if isinstance(value, list):
        text, key = value
        return dt.datetime.fromisoformat(text).astimezone(ZoneInfo(key))
    return dt.datetime.fromisoformat(value)


_PLAIN = frozenset((str, int, float, bool, type(None)))
_TO_JSON: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("datetime", _datetime),
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
    "datetime": _datetime_from,
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


class _Unstorable(Exception):
    """Raised inside the encoder; each container on the way out adds its path segment."""

    def __init__(self, value: Any, why: str, plain: bool = True) -> None:
        super().__init__(why)
        self.value, self.why, self.plain = value, why, plain
        self.segments: list[str] = []


def _message(where: str, path: str, exc: _Unstorable) -> str:
    full = path + "".join(reversed(exc.segments))
    if len(full) > 160:
        full = full[:150] + "..." + full[-10:]
    kind = f"{type(exc.value).__module__}.{type(exc.value).__qualname__}"
    if exc.plain:
        return (f"{where}: cannot store {full} of type {kind} as JSON{exc.why}; declare "
                "serializer='pickle' on the flow or the task to store it with pickle "
                "(pickle runs code when loaded: never resume a store from an untrusted source)")
    return f"{where}: cannot store {full} of type {kind}: {exc.why}"


def _to_json(value: Any, types: Types, depth: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= MAX_DEPTH:
        raise _Unstorable(value, f"it is nested more than {MAX_DEPTH} levels deep", plain=False)
    depth += 1
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        items = value if kind is list or kind is tuple else sorted(value, key=repr)
        out_items = []
        index = 0
        try:  # a loop, not a comprehension: one Python frame per level of nesting
            for item in items:  # a plain item without a call: most of them
                out_items.append(item if type(item) in _PLAIN else _to_json(item, types, depth))
                index += 1
        except _Unstorable as exc:
            exc.segments.append(f"[{index}]")
            raise
        return out_items if kind is list else {TAG: kind.__name__, "v": out_items}
    if kind is dict:
        if TAG not in value:  # string keys: a JSON object (else pairs, below)
            out = {}
            try:
                for key, item in value.items():
                    if type(key) is not str:
                        break
                    out[key] = item if type(item) in _PLAIN else _to_json(item, types, depth)
                else:
                    return out
            except _Unstorable as exc:
                exc.segments.append(f"[{key!r}]")
                raise
        pairs = []
        for key, item in value.items():
            try:
                stored_key = _to_json(key, types, depth)
            except _Unstorable as exc:
                exc.segments.append(f" key {key!r}")
                raise
            try:
                pairs.append([stored_key, _to_json(item, types, depth)])
            except _Unstorable as exc:
                exc.segments.append(f"[{key!r}]")
                raise
        return {TAG: "dict", "v": pairs}
    if value is DELETED:
        return {TAG: "deleted"}
    converter = _TO_JSON.get(kind)
    if converter is not None:
        name, to_plain = converter
        return {TAG: name, "v": to_plain(value)}
    return _typed(value, kind, types, depth)


def _typed(value: Any, kind: type, types: Types, depth: int) -> Any:
    """A value of a declared type (dataclass, Enum, attrs, pydantic, numpy, pandas)."""
    typed = kind_of(kind)
    if typed is None:
        numpy = sys.modules.get("numpy")
        if (numpy is not None and isinstance(value, numpy.generic)
                and value.dtype.kind in NUMPY_SCALAR_KINDS):
            return {TAG: "numpy", "d": value.dtype.str, "v": value.item()}
        scalar = _pandas_scalar(value, kind)
        if scalar is not None:
            return scalar
        raise _Unstorable(value, "")
    name = type_name(kind)
    if types.get(name) is not kind:
        raise _Unstorable(value, (
            f"the flow's code does not declare it: add {kind.__qualname__} to "
            "Flow(..., types=[...]) or make it (or a type holding it) a handler's return "
            "annotation; the run store decodes values only into declared types"), plain=False)
    def nested(item: Any, segment: str = "") -> Any:
        try:
            return _to_json(item, types, depth)
        except _Unstorable as exc:
            exc.segments.append(segment)
            raise

    try:
        payload = payload_of(value, typed, nested)
    except _Unstorable:
        raise
    except Exception as exc:
        raise _Unstorable(value, f"{type(exc).__name__}: {exc}", plain=False) from exc
    return {TAG: "typed", "t": name, "k": typed, "v": payload}


def _pandas_scalar(value: Any, kind: type) -> dict[str, Any] | None:
    """pandas' own scalars (what ``frame["when"].max()`` returns), like numpy's: no
    declaration needed."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return None
    if kind is pandas.Timestamp:
        zone = getattr(value.tz, "key", None) or getattr(value.tz, "zone", None)  # IANA name
        return {TAG: "pandas", "d": "Timestamp", "v": value.isoformat(), "z": zone}
    if kind is pandas.Timedelta:
        return {TAG: "pandas", "d": "Timedelta", "v": int(value.value)}
    if value is pandas.NaT:
        return {TAG: "pandas", "d": "NaT", "v": None}
    return None


def _pandas_from(node: Mapping[str, Any]) -> Any:
    pandas: Any = importlib.import_module("pandas")  # a fixed module, never a stored name
    kind = node["d"]
    if kind == "Timestamp":
        stamp = pandas.Timestamp(node["v"])
        return stamp if node.get("z") is None else stamp.tz_convert(node["z"])
    if kind == "Timedelta":
        return pandas.Timedelta(int(node["v"]), unit="ns")
    if kind == "NaT":
        return pandas.NaT
    raise ValueError(f"not a pandas scalar: {kind!r}")


# One encoder per key order, made once: `json.dumps` with options builds a new encoder on
# every call, which is most of the cost of encoding a small result (one per task in a store).
_ENCODERS = {order: json.JSONEncoder(ensure_ascii=False, allow_nan=True, separators=(",", ":"),
                                     sort_keys=order) for order in (False, True)}


def _unexpected(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")  # pragma: no cover - `_plain` made it


def _c_encoder(sort_keys: bool) -> Callable[[Any, int], Any] | None:
    """json's C encoder itself, made once (None where CPython has none). `JSONEncoder.encode`
    makes one per call, with a dict to catch cycles and two Python frames: about 60% of the
    cost of a small result. A value from `_plain` needs no cycle check (it is a fresh tree
    of bounded depth) and holds only JSON's own types."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return None
    try:
        encoder: Callable[[Any, int], Any] = make(
            None, _unexpected, json.encoder.encode_basestring, None, ":", ",", sort_keys,
            False, True)
    except TypeError:  # pragma: no cover - another signature: the public path then
        return None
    return encoder


_C_ENCODERS = {order: _c_encoder(order) for order in (False, True)}


def _dumps(plain: Any, sort_keys: bool = False) -> str:
    encoder = _C_ENCODERS[sort_keys]
    text = "".join(encoder(plain, 0)) if encoder is not None \
        else _ENCODERS[sort_keys].encode(plain)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (os.fsdecode of a non-UTF-8 name)
            text = json.dumps(plain, ensure_ascii=True, allow_nan=True, separators=(",", ":"),
                              sort_keys=sort_keys)
    return text


def _plain(value: Any, where: str, path: str, types: Types | None) -> Any:
    try:
        return _to_json(value, NO_TYPES if types is None else types, 0)
    except _Unstorable as exc:
        raise SerializationError(_message(where, path, exc)) from exc.__cause__
    except RecursionError:  # a typed payload (e.g. a pydantic dump) deeper than the stack
        raise SerializationError(f"{where}: cannot store {path}: it is nested too deeply") \
            from None


class _Decoder:
    """JSON -> values; typed values only into ``types`` (or, describing, into a text)."""

    def __init__(self, types: Types | None, describing: bool = False) -> None:
        self.types = NO_TYPES if types is None else types
        self.describing = describing

    def __call__(self, value: Any) -> Any:
        kind = type(value)  # loops, not comprehensions: one Python frame per level
        if kind is list:
            items = []
            for item in value:
                items.append(self(item))
            return items
        if kind is not dict:
            return value
        tag = value.get(TAG)
        if tag is None:
            mapping = {}
            for key, item in value.items():
                mapping[key] = self(item)
            return mapping
        if tag == "dict":
            mapping = {}
            for key, item in value["v"]:
                mapping[self(key)] = self(item)
            return mapping
        if tag in ("tuple", "set", "frozenset"):
            items = []
            for item in value["v"]:
                items.append(self(item))
            return tuple(items) if tag == "tuple" else set(items) if tag == "set" else frozenset(items)
        if tag == "deleted":
            return DELETED
        if tag == "typed":
            return self._typed(value)
        if tag == "numpy":
            return self._numpy(value)
        if tag == "pandas":
            return value["v"] if self.describing else _pandas_from(value)
        return _FROM_JSON[tag](value["v"])  # KeyError for an unknown tag: reported by decode()

    def _typed(self, node: Mapping[str, Any]) -> Any:
        name, kind = str(node["t"]), node.get("k")
        if self.describing:
            return f"<{name} value, {size_of(kind, node['v'])} bytes>"
        cls = self.types.get(name)
        if cls is None:
            raise StoreError(
                f"the stored value holds a {name} value, a type the flow's code does not "
                "declare (nothing was imported): declare it with Flow(..., types=[...]) or a "
                "handler's return annotation")
        declared = kind_of(cls)
        if declared != kind:
            raise StoreError(f"the stored {name} value was stored as {kind!r}, but the "
                             f"declared class is {declared!r} now")
        assert declared is not None
        return value_of(cls, declared, node["v"], self)

    def _numpy(self, node: Mapping[str, Any]) -> Any:
        if self.describing:
            return node["v"]
        import numpy

        dtype = numpy.dtype(str(node["d"]))
        if dtype.kind not in NUMPY_SCALAR_KINDS:
            raise ValueError(f"not a numpy scalar dtype: {node['d']!r}")
        return dtype.type(node["v"])


def encode(value: Any, serializer: str, where: str, path: str = "the result",
           types: Types | None = None) -> bytes | str:
    """Encode ``value`` (JSON text, or pickle bytes); raise `SerializationError` naming
    ``where`` (the task) and the path of the value at fault."""
    if serializer == "pickle":
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"{where}: cannot pickle {path}: {exc}") from exc
    plain = _plain(value, where, path, types)
    try:
        return _dumps(plain)
    except (TypeError, ValueError, RecursionError) as exc:  # pragma: no cover - checked above
        raise SerializationError(f"{where}: cannot store {path} as JSON: {exc}") from exc


def encode_for_hash(value: Any, types: Types | None = None) -> bytes:
    """The value's JSON/typed encoding as canonical bytes (dict keys sorted), whatever the
    task's serializer: equal values give equal bytes (also NaN). `SerializationError` when
    the value has no such encoding (an undeclared or unsupported type, too deep)."""
    return _dumps(_plain(value, "the value", "the value", types), sort_keys=True).encode("utf-8")


def same_encoding(a: Any, b: Any, types: Types | None = None) -> bool:
    """True when ``a`` and ``b`` encode alike (so a NaN input equals itself); values with no
    JSON encoding are compared by their pickles, else with ``==``."""
    try:
        return encode_for_hash(a, types) == encode_for_hash(b, types)
    except SerializationError:
        pass
    try:
        return pickle.dumps(a) == pickle.dumps(b)
    except Exception:
        try:
            return bool(a == b)
        except Exception:
            return False


def decode(data: bytes | str | None, codec: str, serializer: str, where: str,
           types: Types | None = None) -> Any:
    """Decode a stored value with the serializer declared *now*; `StoreError` if they disagree
    or the value cannot be decoded (a typed value of a type ``types`` does not hold, too)."""
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
        return _Decoder(types)(json.loads(data))
    except StoreError as exc:
        raise StoreError(f"{where}: {exc}") from None
    except Exception as exc:
        raise StoreError(f"{where}: cannot decode the stored value: {exc!r}") from exc


def describe(data: bytes | str | None, codec: str) -> Any:
    """A stored value for people (listing, showing): JSON decoded through the type table,
    typed values shown as ``<module.Type value, N bytes>``; nothing imported, pickle never
    loaded."""
    if data is None:
        return None
    if codec == "pickle":
        return f"<pickle value, {len(data)} bytes, not loaded>"
    try:
        return _Decoder(None, describing=True)(json.loads(data))  # str or bytes both parse
    except Exception:
        return f"<undecodable {codec} value, {len(data)} bytes>"
