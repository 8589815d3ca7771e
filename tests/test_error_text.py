"""Issue 11, newcomer 9 (DESIGN: error text shown anywhere is ``f"{type(e).__name__}: {e}"``):
a `FileNotFoundError` keeps its file name in the trace, the store, the run report and the
warning about an observer that raised; never ``FileNotFoundError(2, '...')``."""

from __future__ import annotations

import pytest

from flowdsl import Flow
from flowdsl.store import SqliteStore

TEXT = "FileNotFoundError: [Errno 2] No such file or directory: '/data/in.csv'"


def missing_file():
    raise FileNotFoundError(2, "No such file or directory", "/data/in.csv")


def test_the_trace_the_store_and_the_report_keep_the_file_name(tmp_path):
    flow = Flow("error-text")
    flow.task(retries=1, retry_wait=0)(missing_file)
    path = tmp_path / "runs.db"

    result = flow.run(store=str(path), run_id="e1", raise_on_failure=False)

    details = [entry["details"] for entry in result.context.execution_trace]
    assert details[0]["error"] == TEXT  # the retry
    assert details[1]["error"] == TEXT  # the failure
    assert result.tasks["missing_file"].error_message == TEXT
    with SqliteStore(path, readonly=True) as store:
        assert store.get_run("e1")["tasks"]["missing_file"]["error"] == TEXT
    assert TEXT.replace("'", "&#x27;") in result.to_html()


def test_an_observer_that_raises_is_named_with_its_error_text():
    flow = Flow("observer-error-text")

    @flow.task
    def fine():
        return 1

    def observer(event):
        missing_file()

    with pytest.warns(RuntimeWarning) as caught:
        flow.run(observers=[observer])
    messages = {str(w.message) for w in caught}
    assert any(TEXT in m for m in messages), messages
    assert not any("FileNotFoundError(" in m for m in messages)
