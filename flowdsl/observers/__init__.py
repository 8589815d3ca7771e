"""Passive observers of runtime events: logging (loguru) first; metrics and progress later."""

from .logging import LoggingObserver, logging_enabled

__all__ = ["LoggingObserver", "logging_enabled"]
