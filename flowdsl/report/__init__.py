"""The HTML run report: one self-contained file (DAG, Gantt chart of attempts, task table,
errors, inputs, summary). Imported lazily by ``RunResult.to_html``, ``SqliteStore.report`` and
``flowdsl report``; never by ``import flowdsl``."""

from __future__ import annotations

from .model import from_result, from_store
from .render import STATUS_COLOURS, render, write

__all__ = ["STATUS_COLOURS", "from_result", "from_store", "render", "write"]
