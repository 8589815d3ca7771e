"""`Cache`: a task's cache policy across runs (``@flow.task(cache=...)``, ``Flow(cache=...)``)."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from ..errors import DefinitionError

__all__ = ["Cache", "as_cache", "resolve_cache"]


@attrs.frozen
class Cache:
    """Reuse a completed result from an earlier run of the same flow in the same store.

    ``ttl``: seconds an entry stays reusable (None: forever; 0 or less: never reused).
    ``key``: ``key(**bound_inputs) -> str`` replaces the hash of the task's inputs (the
    task's fingerprint still applies).
    """

    ttl: float | None = None
    key: Callable[..., str] | None = attrs.field(default=None, eq=False)


def as_cache(value: Any, where: str) -> Cache | bool | None:
    """Validate a ``cache=`` keyword: None (the flow's policy), a bool, or a `Cache`."""
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, Cache):
        raise DefinitionError(f"{where}: cache takes True, False or flowdsl.Cache(ttl=..., "
                              f"key=...), got {value!r}")
    ttl = value.ttl
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or math.isnan(ttl)):
        raise DefinitionError(f"{where}: Cache(ttl=...) takes seconds (a number) or None, "
                              f"got {ttl!r}")
    if value.key is not None and not callable(value.key):
        raise DefinitionError(f"{where}: Cache(key=...) takes a callable returning a str, "
                              f"got {value.key!r}")
    return value


def resolve_cache(own: Cache | bool | None, flow: Cache | bool | None) -> Cache | None:
    """The policy a task runs with: its own ``cache=`` wins over the flow's."""
    chosen = flow if own is None else own
    if chosen is True:
        return Cache()
    if chosen is None or chosen is False:
        return None
    return chosen
