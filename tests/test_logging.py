"""flowdsl's loguru logger: off by default; once enabled, records carry run_id and task_id."""

import pytest
from loguru import logger

from flowdsl import Flow


class Boom(Exception):
    pass


def noop():
    return "done"


def fail():
    raise Boom("failed")


@pytest.fixture
def captured():
    """A sink collecting every record; flowdsl disabled again and the sink removed after."""
    records = []
    sink = logger.add(lambda message: records.append(message.record), level="TRACE",
                      format="{message}")
    try:
        yield records
    finally:
        logger.remove(sink)
        logger.disable("flowdsl")


def flowdsl_records(records):
    return [r for r in records if (r["name"] or "").split(".")[0] == "flowdsl"]


def _flow():
    flow = Flow("logged")
    flow.task(id="first")(noop)
    flow.task(id="second", depends_on=["first"], retries=1, retry_wait=0)(fail)
    flow.task(id="third", depends_on=["second"])(noop)
    return flow


def test_flowdsl_logs_nothing_by_default(captured, run_flow):
    result = run_flow(_flow(), raise_on_failure=False)

    assert result.tasks["first"].status.value == "completed"
    assert flowdsl_records(captured) == []


def test_enabled_logger_records_carry_run_and_task_ids(captured, run_flow):
    logger.enable("flowdsl")

    result = run_flow(_flow(), run_id="logged-run", raise_on_failure=False)

    records = flowdsl_records(captured)
    assert records
    assert all(r["extra"].get("run_id") == "logged-run" for r in records)
    by_task = {}
    for record in records:
        task_id = record["extra"].get("task_id")
        if task_id is not None:
            by_task.setdefault(task_id, []).append(record)
    assert set(by_task) == {"first", "second", "third"}  # every task, whatever its outcome
    levels = {r["level"].name for r in by_task["second"]}
    assert "ERROR" in levels or "WARNING" in levels  # the failure and retry are visible
    assert result.run_id == "logged-run"


def test_disabling_again_stops_the_records(captured, run_flow):
    logger.enable("flowdsl")
    run_flow(_flow(), raise_on_failure=False)
    logger.disable("flowdsl")
    captured.clear()

    run_flow(_flow(), raise_on_failure=False)

    assert flowdsl_records(captured) == []


def test_error_text_in_log_lines_is_type_and_message(captured, run_flow, flow):
    @flow.task(retries=1, retry_wait=0)
    def read():
        open("/nonexistent/flowdsl-input.csv")

    logger.enable("flowdsl")
    run_flow(flow, raise_on_failure=False)

    messages = [r["message"] for r in flowdsl_records(captured)
                if r["extra"].get("task_id") == "read" and r["level"].name in ("WARNING", "ERROR")]
    text = ("FileNotFoundError: [Errno 2] No such file or directory: "
            "'/nonexistent/flowdsl-input.csv'")
    assert len(messages) == 2  # the retry and the failure
    assert all(text in message for message in messages), messages
    assert not any("FileNotFoundError(" in message for message in messages)


def test_a_branch_not_taken_is_logged_as_info_a_skip_after_a_failure_as_warning(captured):
    flow = Flow("branches")
    flow.task(id="gated", run_if=lambda: False)(noop)
    flow.task(id="after_gated", depends_on=["gated"])(noop)
    flow.task(id="broken")(fail)
    flow.task(id="after_broken", depends_on=["broken"])(noop)
    logger.enable("flowdsl")

    flow.run(raise_on_failure=False)

    levels = {r["extra"].get("task_id"): r["level"].name for r in flowdsl_records(captured)
              if "skipped" in r["message"]}
    assert levels == {"gated": "INFO", "after_gated": "INFO", "after_broken": "WARNING"}
