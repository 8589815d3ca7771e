"""OpenTelemetry tracing of runs (extra ``otel``): one span per run, per task, per attempt.

The run span ``flowdsl.run`` (attributes ``flowdsl.flow``, ``flowdsl.run_id``,
``flowdsl.status``; ERROR status when the run failed) has one child span ``flowdsl.task`` per
task that ran (``flowdsl.task_id`` only), and each task span one child ``flowdsl.attempt`` per
attempt (``flowdsl.task_id``, 1-based ``flowdsl.attempt``, ``flowdsl.index`` for an element),
timed with the attempt's real start and end. An exception is recorded on the attempt span that
raised it and, for a FAILED task, on the task span. SKIPPED and CANCELLED tasks are events
``flowdsl.task_skipped`` / ``flowdsl.task_cancelled`` on the run span (``flowdsl.task_id``,
``flowdsl.reason``).

Task and attempt spans are made when the task finishes, from the times its `TaskFinished`
event carries, so an observer that is slow to export never delays an attempt.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ..running.events import Event, RunFinished, RunStarted, TaskFinished
from ..status import RunStatus, TaskStatus
from ..version import __version__

__all__ = ["OpenTelemetryObserver", "otlp_provider"]

_EVENT_OF = {TaskStatus.SKIPPED: "flowdsl.task_skipped",
             TaskStatus.CANCELLED: "flowdsl.task_cancelled"}


def _ns(seconds: float | None) -> int:
    """Epoch seconds -> OpenTelemetry's nanoseconds (now when unknown)."""
    return time.time_ns() if seconds is None else int(seconds * 1e9)


def _error(span: Span, error: BaseException, when: float | None) -> None:
    span.record_exception(error, timestamp=_ns(when))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class OpenTelemetryObserver:
    """Trace each run it observes: ``flow.run(..., observers=[OpenTelemetryObserver()])``.

    ``tracer_provider`` defaults to OpenTelemetry's global provider (set by the application or
    by ``opentelemetry-instrument``); spans go wherever that provider exports them.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer_provider = tracer_provider
        self._tracer = trace.get_tracer("flowdsl", __version__, tracer_provider=tracer_provider)
        self._runs: dict[str, Span] = {}

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._runs[event.run_id] = self._tracer.start_span(
                "flowdsl.run", attributes={"flowdsl.flow": event.flow,
                                           "flowdsl.run_id": event.run_id})
        elif isinstance(event, TaskFinished):
            run = self._runs.get(event.run_id)
            if run is not None:
                self._task(run, event)
        elif isinstance(event, RunFinished):
            run = self._runs.pop(event.run_id, None)
            if run is not None:
                run.set_attribute("flowdsl.status", event.status.value)
                if event.status is RunStatus.FAILED:
                    run.set_status(Status(StatusCode.ERROR, f"run {event.status.value}"))
                run.end()

    def _task(self, run: Span, event: TaskFinished) -> None:
        name = _EVENT_OF.get(event.status)
        if name is not None:
            run.add_event(name, {"flowdsl.task_id": event.task_id,
                                 "flowdsl.reason": event.reason or ""})
        attempts = event.attempt_times
        if name is not None and not attempts:
            return  # settled without running: the event says it all
        started = attempts[0].started if attempts else None
        ended = attempts[-1].ended if attempts else None
        task = self._tracer.start_span(
            "flowdsl.task", context=trace.set_span_in_context(run), start_time=_ns(started),
            attributes={"flowdsl.task_id": event.task_id})
        inside = trace.set_span_in_context(task)
        for attempt in attempts:
            attributes: dict[str, str | int] = {"flowdsl.task_id": event.task_id,
                                                "flowdsl.attempt": attempt.number}
            if attempt.index is not None:
                attributes["flowdsl.index"] = attempt.index
            span = self._tracer.start_span("flowdsl.attempt", context=inside,
                                           start_time=_ns(attempt.started), attributes=attributes)
            if attempt.error is not None:
                _error(span, attempt.error, attempt.ended)
            span.end(end_time=_ns(attempt.ended))
        if event.status is TaskStatus.FAILED and event.error is not None:
            _error(task, event.error, ended)
        task.end(end_time=_ns(ended))

    def close(self) -> None:
        """Flush the spans (the CLI calls it when the run is over)."""
        flush = getattr(self.tracer_provider, "force_flush", None)
        if flush is not None:
            flush()


def otlp_provider() -> trace.TracerProvider | None:
    """A provider exporting over OTLP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` and
    ``OTEL_SERVICE_NAME`` variables (``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` picks gRPC, else
    HTTP/protobuf); None, with a note on stderr, when ``opentelemetry-exporter-otlp`` or the
    SDK is not installed (the global provider is then used)."""
    grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc"
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter: Any
        if grpc:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            exporter = OTLPSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPSpanExporter,
            )
            exporter = HTTPSpanExporter()
    except ImportError as exc:
        print(f"flowdsl: --otel without an OTLP exporter ({exc}); spans go to the global "
              "tracer provider (pip install opentelemetry-exporter-otlp)", file=sys.stderr)
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
        "OTEL_SERVICE_NAME", "flowdsl")}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
