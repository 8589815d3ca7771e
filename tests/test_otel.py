"""OpenTelemetryObserver: run, task and attempt spans as DESIGN.md "Observability (rev. 3)"
describes them, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import http.server
import inspect
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel tests need opentelemetry-sdk (dev extra)")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from flowdsl import Flow, RunStatus  # noqa: E402
from flowdsl.observers import OpenTelemetryObserver  # noqa: E402


@pytest.fixture
def traced() -> tuple[OpenTelemetryObserver, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetryObserver(provider), exporter


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def failing_flow() -> Flow:
    """load -> validate (fails twice, then succeeds) -> transform (fails) -> report (skipped);
    audit independent."""
    flow = Flow("etl")
    calls = {"validate": 0}

    @flow.task
    def load() -> int:
        return 3

    @flow.task(retries=2, retry_wait=0)
    def validate(load: int) -> bool:
        calls["validate"] += 1
        if calls["validate"] < 3:
            raise ConnectionError(f"flaky source, call {calls['validate']}")
        return True

    @flow.task
    def transform(load: int, validate: bool) -> int:
        raise ValueError("column 'price' is missing")

    @flow.task
    def report(transform: int) -> str:
        return "never"

    @flow.task
    def audit(load: int) -> str:
        return "ok"

    return flow


def run_quietly(flow: Flow, **options: Any) -> Any:
    """``flow.run`` returning a FAILED result (rev. 3's ``raise_on_failure=False`` once the
    keyword exists)."""
    if "raise_on_failure" in inspect.signature(flow.run).parameters:
        options["raise_on_failure"] = False
    return flow.run(**options)


def run_failing(observer: OpenTelemetryObserver) -> Any:
    return run_quietly(failing_flow(), observers=[observer])


def test_one_run_span_with_its_attributes_and_error_status(traced: Any) -> None:
    observer, exporter = traced
    result = run_failing(observer)
    assert result.status is RunStatus.FAILED
    (run,) = spans_named(exporter, "flowdsl.run")
    assert run.parent is None
    assert dict(run.attributes or {}) == {"flowdsl.flow": "etl", "flowdsl.run_id": result.run_id,
                                          "flowdsl.status": "failed"}
    assert run.status.status_code is StatusCode.ERROR


def test_task_spans_are_children_of_the_run_and_carry_only_the_task_id(traced: Any) -> None:
    observer, exporter = traced
    run_failing(observer)
    (run,) = spans_named(exporter, "flowdsl.run")
    tasks = spans_named(exporter, "flowdsl.task")
    assert sorted(span.attributes["flowdsl.task_id"] for span in tasks) == [  # type: ignore[index]
        "audit", "load", "transform", "validate"]  # report was skipped: no span
    for span in tasks:
        assert set(span.attributes or {}) == {"flowdsl.task_id"}
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id


def test_a_retried_task_has_one_attempt_span_per_attempt_with_real_times(traced: Any) -> None:
    observer, exporter = traced
    result = run_failing(observer)
    (task,) = [s for s in spans_named(exporter, "flowdsl.task")
               if s.attributes["flowdsl.task_id"] == "validate"]  # type: ignore[index]
    attempts = sorted((s for s in spans_named(exporter, "flowdsl.attempt")
                       if s.parent is not None and s.parent.span_id == task.context.span_id),
                      key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {}) for s in attempts] == [
        {"flowdsl.task_id": "validate", "flowdsl.attempt": n} for n in (1, 2, 3)]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR,
                                                         StatusCode.UNSET]
    for span, call in zip(attempts[:2], (1, 2)):
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes["exception.type"] == "ConnectionError"  # type: ignore[index]
        assert f"call {call}" in exception.attributes["exception.message"]  # type: ignore[index]
    # times: ordered, inside the task span, matching the task's own first start and last end
    for earlier, later in zip(attempts, attempts[1:]):
        assert earlier.end_time is not None and later.start_time is not None
        assert earlier.start_time <= earlier.end_time <= later.start_time
    assert task.start_time == attempts[0].start_time
    assert task.end_time == attempts[-1].end_time
    run = result.tasks["validate"]
    assert abs(task.start_time / 1e9 - run.started_at) < 1e-3  # type: ignore[operator]
    assert abs(task.end_time / 1e9 - run.ended_at) < 1e-3  # type: ignore[operator]
    assert task.status.status_code is StatusCode.UNSET  # it completed in the end


def test_a_failed_task_records_its_exception_on_the_attempt_and_task_spans(traced: Any) -> None:
    observer, exporter = traced
    run_failing(observer)
    (task,) = [s for s in spans_named(exporter, "flowdsl.task")
               if s.attributes["flowdsl.task_id"] == "transform"]  # type: ignore[index]
    (attempt,) = [s for s in spans_named(exporter, "flowdsl.attempt")
                  if s.parent is not None and s.parent.span_id == task.context.span_id]
    for span in (task, attempt):
        assert span.status.status_code is StatusCode.ERROR
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes["exception.type"] == "ValueError"  # type: ignore[index]
        assert "price" in exception.attributes["exception.message"]  # type: ignore[index]
    assert dict(attempt.attributes or {}) == {"flowdsl.task_id": "transform",
                                               "flowdsl.attempt": 1}


def test_skipped_and_cancelled_tasks_are_events_on_the_run_span(traced: Any) -> None:
    observer, exporter = traced
    flow = Flow("critical")

    @flow.task
    def first() -> int:
        return 1

    @flow.task(priority=1)  # critical: its failure stops the run
    def gate(first: int) -> int:
        raise RuntimeError("gate closed")

    @flow.task
    def after_gate(gate: int) -> int:
        return gate

    @flow.task(priority=4)
    def unrelated() -> int:
        return 2

    run_quietly(flow, observers=[observer])
    (run,) = spans_named(exporter, "flowdsl.run")
    events = {(e.name, e.attributes["flowdsl.task_id"]): e.attributes["flowdsl.reason"]  # type: ignore[index]
              for e in run.events}
    assert events == {
        ("flowdsl.task_skipped", "after_gate"): "upstream task 'gate' failed",
        ("flowdsl.task_cancelled", "unrelated"): "critical task 'gate' failed",
    }
    assert {s.attributes["flowdsl.task_id"] for s in spans_named(exporter, "flowdsl.task")} == {  # type: ignore[index]
        "first", "gate"}


def test_a_succeeded_run_has_no_error_status(traced: Any) -> None:
    observer, exporter = traced
    flow = Flow("ok")

    @flow.task
    def only() -> int:
        return 1

    result = flow.run(observers=[observer])
    (run,) = spans_named(exporter, "flowdsl.run")
    assert run.attributes["flowdsl.status"] == "succeeded"  # type: ignore[index]
    assert run.status.status_code is StatusCode.UNSET
    (task,) = spans_named(exporter, "flowdsl.task")
    (attempt,) = spans_named(exporter, "flowdsl.attempt")
    assert attempt.parent is not None and attempt.parent.span_id == task.context.span_id
    assert abs(attempt.start_time / 1e9 - result.tasks["only"].started_at) < 1e-3  # type: ignore[operator]


class Collector:
    """A real OTLP/HTTP receiver on 127.0.0.1: keeps each ``/v1/traces`` request's spans."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.spans: list[Any] = []
        self.received = threading.Event()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                collector.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "pipeline.py"
    target.write_text(textwrap.dedent("""
        from flowdsl import Flow
        flow = Flow("cli_otel")

        @flow.task
        def one():
            return 1

        @flow.task
        def two(one):
            raise ValueError("two fails")
    """))
    return subprocess.run(
        [sys.executable, "-m", "flowdsl", "run", str(target), "--quiet", "--run-id", "r1",
         "--store", str(tmp_path / "runs.db"), *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **env})


def test_cli_otel_exports_spans_over_otlp(tmp_path: Path) -> None:
    """`flowdsl run --otel` in a real subprocess sends its spans to an OTLP/HTTP endpoint set
    by the standard variables."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http",
                        reason="opentelemetry-exporter-otlp-proto-http is not installed")
    collector = Collector()
    try:
        completed = cli_run(tmp_path, "--otel", OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                            NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        assert completed.returncode == 1, completed.stderr  # task two failed
        assert collector.received.wait(30)
    finally:
        collector.close()

    def attributes(span: Any) -> dict[str, Any]:
        return {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}

    spans = {(span.name, attributes(span).get("flowdsl.task_id")): span
             for span in collector.spans}
    assert set(spans) == {("flowdsl.run", None), ("flowdsl.task", "one"),
                          ("flowdsl.task", "two"), ("flowdsl.attempt", "one"),
                          ("flowdsl.attempt", "two")}
    run = spans[("flowdsl.run", None)]
    assert attributes(run) == {"flowdsl.flow": "cli_otel", "flowdsl.run_id": "r1",
                               "flowdsl.status": "failed"}
    assert spans[("flowdsl.task", "two")].parent_span_id == run.span_id
    assert spans[("flowdsl.attempt", "two")].parent_span_id == spans[
        ("flowdsl.task", "two")].span_id
    assert [e.name for e in spans[("flowdsl.attempt", "two")].events] == ["exception"]


def test_cli_otel_without_an_exporter_says_so(tmp_path: Path) -> None:
    """Without opentelemetry-exporter-otlp the run still works and stderr says where spans go
    (here the exporter's import is made to fail)."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.startswith("opentelemetry.exporter"):
                    raise ImportError(f"{name} blocked by the test")
        sys.meta_path.insert(0, Block())
    """))
    completed = cli_run(tmp_path, "--otel",
                        PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
    assert completed.returncode == 1, completed.stderr
    assert "without an OTLP exporter" in completed.stderr


def test_attempt_spans_under_every_executor(traced: Any, run_flow: Any) -> None:
    """Sequential, concurrent and Dask: the observer runs on the driver and sees each attempt
    (the handler fails by attempt number, so it needs no state shared with the test)."""
    from flowdsl import current_task

    observer, exporter = traced
    flow = Flow("executors")

    @flow.task(retries=1, retry_wait=0)
    def flaky() -> int:
        current = current_task()
        if current is not None and current.attempt == 1:
            raise ConnectionError("first attempt fails")
        return 1

    @flow.task
    def after(flaky: int) -> int:
        return flaky + 1

    result = run_flow(flow, observers=[observer])
    assert result.status is RunStatus.SUCCEEDED
    attempts = sorted((dict(s.attributes or {})["flowdsl.task_id"],
                       dict(s.attributes or {})["flowdsl.attempt"], s.status.status_code)
                      for s in spans_named(exporter, "flowdsl.attempt"))
    assert attempts == [("after", 1, StatusCode.UNSET), ("flaky", 1, StatusCode.ERROR),
                        ("flaky", 2, StatusCode.UNSET)]
    for span in spans_named(exporter, "flowdsl.attempt"):
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
