"""A flow whose task returns a typed value, run in a fresh process per phase.

``python -m tests.flows.typed_values KIND STORE first`` runs it: ``make`` stores the value,
``check`` fails on purpose. ``... KIND STORE resume RUN_ID`` resumes it in a new process:
``make`` is restored from the store (it refuses to run again) and ``check`` compares the
restored value with a freshly built one, printing ``SAME <type>`` or the difference.
The value types are declared by ``make``'s return annotation (``annotated``) or by
``Flow(types=[...])`` (the others).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
from typing import Any, Optional
from zoneinfo import ZoneInfo

import attrs
import numpy as np
import pandas as pd
import pydantic

from flowdsl import Flow


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str = "p"
    tags: tuple[str, ...] = ()
    hidden: int = dataclasses.field(default=0, init=False)


@attrs.define
class Reading:
    _sensor: str
    color: Color
    where: Optional[Point] = None
    at: dt.datetime = dt.datetime(2024, 1, 1)


class Order(pydantic.BaseModel):
    id: int
    items: list[str]
    placed: dt.datetime
    total: float


@dataclasses.dataclass
class Holder:
    points: list[Point]
    frames: dict[str, pd.DataFrame]


def frame() -> pd.DataFrame:
    """Mixed dtypes, a non-default index and nulls."""
    return pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "x": [1.5, float("nan"), -2.0],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "when": pd.to_datetime(["2024-01-01", None, "2024-03-01 12:30:00"], format="ISO8601"),
            "cat": pd.Categorical(["lo", "hi", "lo"]),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


def build(kind: str) -> Any:
    """The value of ``kind``, built afresh."""
    paris = ZoneInfo("Europe/Paris")
    return {
        "dataclass": lambda: Point(1.0, 2.5, "home", ("a", "b")),
        "enum": lambda: [Color.RED, Color.BLUE],
        "attrs": lambda: Reading("t1", Color.BLUE, Point(0.0, 1.0)),
        "pydantic": lambda: Order(id=7, items=["x", "y"], placed=dt.datetime(2024, 5, 1, 9),
                                  total=12.5),
        "ndarray": lambda: {"grid": np.arange(12, dtype=np.int32).reshape(3, 4),
                            "f": np.array([0.5, np.nan])},
        "dataframe": frame,
        "series": lambda: pd.Series([1.5, None, 3.0], index=pd.Index([10, 20, 30], name="k"),
                                    name="price"),
        "numpy_scalar": lambda: {"count": np.int64(41), "mean": np.float64(2.25),
                                 "flag": np.bool_(True)},
        "zoneinfo": lambda: dt.datetime(2024, 3, 30, 12, 0, tzinfo=paris),
        "surrogate": lambda: {"name": "caf\udce9.txt", "\udcff": "key"},
        "annotated": lambda: [Holder([Point(1, 2)], {"f": frame()})],
    }[kind]()


def same(a: Any, b: Any) -> str:
    """"" when ``a`` and ``b`` are equal and of the same types, else what differs."""
    if type(a) is not type(b):
        return f"type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        return ""
    if isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True)
        return ""
    if isinstance(a, np.ndarray):
        ok = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        return "" if ok else f"array {a!r} != {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"keys {list(a)} != {list(b)}"
        return next((d for d in (same(a[k], b[k]) for k in a) if d), "")
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return "length"
        return next((d for d in map(same, a, b) if d), "")
    if isinstance(a, Holder):
        return same(a.points, b.points) or same(a.frames, b.frames)
    if isinstance(a, dt.datetime) and a.tzinfo is not None:
        if getattr(a.tzinfo, "key", None) != getattr(b.tzinfo, "key", None):
            return f"zone {a.tzinfo!r} != {b.tzinfo!r}"
        later = dt.timedelta(days=1)  # across the DST change of 2024-03-31
        return "" if (a == b and (a + later).utcoffset() == (b + later).utcoffset()) else "time"
    if isinstance(a, float) and a != a:
        return "" if b != b else "nan"
    return "" if a == b else f"{a!r} != {b!r}"


def make_flow(kind: str) -> Flow:
    types = [] if kind == "annotated" else [Point, Color, Reading, Order, np.ndarray,
                                            pd.DataFrame, pd.Series]
    flow = Flow("typed_values", types=types)
    phase = sys.argv[3] if len(sys.argv) > 3 else "first"

    if kind == "annotated":
        @flow.task
        def make() -> list[Holder]:
            if phase == "resume":
                raise RuntimeError("make ran again: it should have been restored")
            return build(kind)  # type: ignore[no-any-return]
    else:
        @flow.task(id="make")
        def make_any():  # type: ignore[no-untyped-def]
            if phase == "resume":
                raise RuntimeError("make ran again: it should have been restored")
            return build(kind)

    @flow.task
    def check(make: Any) -> str:
        if phase == "first":
            raise RuntimeError("fails once, on purpose")
        diff = same(make, build(kind))
        return f"SAME {type(make).__name__}" if not diff else f"DIFFERENT {diff}"

    return flow


def main() -> None:
    kind, store, phase = sys.argv[1:4]
    flow = make_flow(kind)
    if phase == "first":
        result = flow.run(store=store, raise_on_failure=False)
        print(result.run_id)
        return
    result = flow.run(store=store, resume=sys.argv[4], raise_on_failure=False)
    print(result.results.get("check", result.tasks["check"].error))
    print(result.tasks["make"].reason)


if __name__ == "__main__":
    main()
