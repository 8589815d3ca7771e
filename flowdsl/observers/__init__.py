"""Passive observers of runtime events: logging (loguru) and the CLI's progress display."""

from .logging import LoggingObserver, logging_enabled

__all__ = ["LoggingObserver", "logging_enabled"]
