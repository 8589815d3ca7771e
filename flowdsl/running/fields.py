"""The fields of a `Run`, in one slotted base shared by the run's parts."""

from __future__ import annotations

__all__ = ["RunFields"]


class RunFields:
    """The names every part of a `Run` (`SettlingRun`, `MappingRun`, `CachingRun`, `Run`)
    reads and writes: slots, not an instance dict, so that every ``self.x`` of the hot path
    is a slot read. (A dict of more than 30 keys loses CPython 3.11's shared-key layout, and
    with it the specialised attribute and method look-ups: ~270 instructions per task
    more; issue 16.) `Run.__init__` sets them all."""

    __slots__ = (
        "started", "plan", "run_id", "context", "units", "tasks", "preserve", "restore", "emit",
        "gate", "blocked", "gated", "stopped_by", "interrupted", "first_error", "final",
        "preservation_time", "completed_here", "completed_time", "in_order", "element_time",
        "elements_reused", "_offset",
        "_sequence", "journal", "store_time", "restored", "maps", "caching", "cached",
        "_unsaved", "history", "resources", "slot",
    )
