"""Typed values in the store without pickle: each kind's payload, to and from JSON.

A typed value is stored as ``{"$flowdsl": "typed", "t": "module.qualname", "v": payload}``.
Dataclasses and attrs classes keep their fields one by one, Enums their value, pydantic v2
models their ``model_dump``; numpy arrays are ``.npy`` bytes (``allow_pickle=False``) and
pandas DataFrames and Series Parquet bytes (pyarrow), both base64 text. Decoding builds the
class the flow's code declares; the store's text never chooses what is imported.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import json
from typing import Any, Callable

import attrs

__all__ = ["payload_of", "value_of", "size_of", "SERIES_COLUMN", "NUMPY_SCALAR_KINDS"]

Nested = Callable[..., Any]  # encodes (or decodes) a nested value: (value, path segment)

#: Parquet needs a column: a Series is stored as a frame of this one column.
SERIES_COLUMN = "__flowdsl_series__"
#: numpy scalar kinds stored as their Python value and dtype (bool, ints, floats, str).
NUMPY_SCALAR_KINDS = "biufU"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _frame_bytes(frame: Any) -> bytes:
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise ValueError(f"its column names must be strings for Parquet, not {bad[0]!r}")
    names = [n for n in frame.index.names if n is not None and not isinstance(n, str)]
    if names:
        raise ValueError(f"its index names must be strings or None, not {names[0]!r}")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=True)
    return buffer.getvalue()


def payload_of(value: Any, kind: str, nested: Nested) -> Any:
    """The JSON payload of a typed ``value`` of ``kind``; raises (ValueError, TypeError,
    pyarrow's errors) when this value cannot be stored."""
    if kind == "dataclass":
        return {f.name: nested(getattr(value, f.name), f".{f.name}")
                for f in dataclasses.fields(value)}
    if kind == "attrs":
        return {a.name: nested(getattr(value, a.name), f".{a.name}")
                for a in attrs.fields(type(value))}
    if kind == "enum":
        return nested(value.value, ".value")
    if kind == "pydantic":
        try:
            return nested(value.model_dump(mode="python"), ".model_dump()")
        except Exception:  # a pydantic type of its own (a Url ...): its JSON form validates back
            return nested(value.model_dump(mode="json"), ".model_dump()")
    if kind == "ndarray":
        import numpy

        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        return _b64(buffer.getvalue())
    if kind == "dataframe":
        return _b64(_frame_bytes(value))
    if kind == "series":
        return {"name": nested(value.name, ".name"),
                "frame": _b64(_frame_bytes(value.to_frame(name=SERIES_COLUMN)))}
    raise TypeError(f"no typed encoding for kind {kind!r}")  # pragma: no cover


def _build(cls: type, values: dict[str, Any], init: dict[str, bool],
           alias: dict[str, str]) -> Any:
    obj = cls(**{alias.get(k, k): v for k, v in values.items() if init.get(k, False)})
    for key, value in values.items():
        if not init.get(key, False):
            object.__setattr__(obj, key, value)
    return obj


def value_of(cls: type, kind: str, payload: Any, nested: Nested) -> Any:
    """The value of declared class ``cls`` from its stored payload."""
    if kind == "dataclass":
        fields = {f.name: f.init for f in dataclasses.fields(cls)}
        return _build(cls, {k: nested(v) for k, v in payload.items()}, fields, {})
    if kind == "attrs":
        found = attrs.fields(cls)
        return _build(cls, {k: nested(v) for k, v in payload.items()},
                      {a.name: a.init for a in found},
                      {a.name: a.alias for a in found if a.alias})
    if kind == "enum":
        return cls(nested(payload))
    if kind == "pydantic":
        return cls.model_validate(nested(payload))  # type: ignore[attr-defined]
    if kind == "ndarray":
        import numpy

        return numpy.load(io.BytesIO(base64.b64decode(payload)), allow_pickle=False)
    if kind in ("dataframe", "series"):
        pandas: Any = importlib.import_module("pandas")  # optional, and without stubs
        data = payload if kind == "dataframe" else payload["frame"]
        frame = pandas.read_parquet(io.BytesIO(base64.b64decode(data)), engine="pyarrow")
        if kind == "dataframe":
            return frame
        return frame[SERIES_COLUMN].rename(nested(payload["name"]))
    raise TypeError(f"no typed decoding for kind {kind!r}")  # pragma: no cover


def size_of(kind: Any, payload: Any) -> int:
    """Bytes a stored payload holds (base64 counted as the bytes it encodes); never decodes."""
    if kind == "series" and isinstance(payload, dict):
        payload = payload.get("frame")
    if kind in ("ndarray", "dataframe", "series") and isinstance(payload, str):
        return len(payload) * 3 // 4 - payload[-2:].count("=")
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str))
