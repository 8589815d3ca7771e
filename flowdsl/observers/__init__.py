"""Passive observers of runtime events: logging (loguru), progress, OpenTelemetry (lazily:
``OpenTelemetryObserver`` needs the ``otel`` extra and is imported on first use)."""

from typing import Any

from .logging import LoggingObserver, logging_enabled

__all__ = ["LoggingObserver", "OpenTelemetryObserver", "logging_enabled"]


def __getattr__(name: str) -> Any:
    if name == "OpenTelemetryObserver":
        from .otel import OpenTelemetryObserver

        return OpenTelemetryObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
