"""The HTML run report: ``result.to_html``, ``store.report`` and ``flowdsl report``, opened in
a real headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``: no browser download). Screenshots are kept under ``tests/artifacts/``."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdsl import Flow, RunStatus
from flowdsl.report import STATUS_COLOURS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"

FLOW_SOURCE = textwrap.dedent("""
    from flowdsl import Flow

    flow = Flow("etl")
    calls = {"validate": 0}

    @flow.task
    def load(data_source="default.csv"):
        return {"dataset": data_source, "records": 3}

    @flow.task(retries=2, retry_wait=0.01)
    def validate(load):
        calls["validate"] += 1
        if calls["validate"] < 3:
            raise ConnectionError(f"flaky source (call {calls['validate']})")
        return True

    @flow.task
    def transform(load, validate):
        raise ValueError("column 'price' is missing")

    @flow.task
    def analyze(transform):
        return {"mean": 1.0}

    @flow.task
    def audit(load):
        return "ok"
""")

EXPECTED = {"load": ("completed", 1), "validate": ("completed", 3),
            "transform": ("failed", 1), "analyze": ("skipped", 0), "audit": ("completed", 1)}


def etl_flow(tmp_path: Path) -> Flow:
    """The seed-style pipeline above (a retried task, a failed one, a skipped one)."""
    path = tmp_path / "etl_pipeline.py"
    path.write_text(FLOW_SOURCE)
    namespace: dict[str, Any] = {}
    exec(compile(FLOW_SOURCE, str(path), "exec"), namespace)
    flow: Flow = namespace["flow"]
    return flow


def run_quietly(flow: Flow, initial: dict[str, Any] | None = None, **options: Any) -> Any:
    """``flow.run`` returning a FAILED result (rev. 3's ``raise_on_failure=False`` once the
    keyword exists)."""
    if "raise_on_failure" in inspect.signature(flow.run).parameters:
        options["raise_on_failure"] = False
    return flow.run(initial, **options)


# == the file itself (no browser) ===========================================================
def test_to_html_returns_the_text_and_writes_it_to_path(tmp_path: Path) -> None:
    result = run_quietly(etl_flow(tmp_path), {"data_source": "customers.csv"})
    target = tmp_path / "report.html"
    text = result.to_html(target)
    assert target.read_text(encoding="utf-8") == text
    assert result.to_html() == text  # no path: returned only
    assert result.run_id in text and "customers.csv" in text


def test_the_report_is_self_contained(tmp_path: Path) -> None:
    text = run_quietly(etl_flow(tmp_path)).to_html()
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import", text)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "default-src 'none'" in text  # the browser refuses any fetch
    assert "sourceMappingURL" not in text


def test_the_report_shows_errors_with_tracebacks_inputs_and_summary(tmp_path: Path) -> None:
    result = run_quietly(etl_flow(tmp_path), {"data_source": "customers.csv"})
    text = result.to_html()
    errors = text[text.index('<div id="errors">'):]
    assert "transform: ValueError: column &#x27;price&#x27; is missing" in errors
    assert "Traceback (most recent call last)" in errors and "etl_pipeline.py" in errors
    assert re.search(r"<th>data_source</th><td>customers.csv</td>", text)
    assert re.search(r"<th>failed_tasks</th><td>1</td>", text)
    assert "upstream task &#x27;transform&#x27; failed" in text  # analyze's reason


def test_a_value_cannot_close_the_data_script(tmp_path: Path) -> None:
    flow = Flow("escape")

    @flow.task
    def boom(note: str) -> None:
        raise ValueError(note)

    text = run_quietly(flow, {"note": "</script><script>alert(1)</script>"}).to_html()
    assert "<script>alert(1)" not in text


def test_store_report_unknown_run_is_a_key_error(tmp_path: Path) -> None:
    from flowdsl.store import SqliteStore

    with SqliteStore(tmp_path / "runs.db") as store:
        with pytest.raises(KeyError, match="nope"):
            store.report("nope")


# == in the browser =========================================================================
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (dev extra)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Opened:
    """A report loaded in a page, with what the page said on its console."""

    def __init__(self, browser: Any, path: Path, name: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.problems.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("body[data-drawn]", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def all(self, selector: str, script: str) -> Any:
        return self.page.eval_on_selector_all(selector, script)

    def close(self) -> None:
        self.page.close()


NODES = "#dag [data-task-id]"
BARS = "#gantt rect[data-task-id]"
ATTRS = "els => els.map(e => [e.dataset.taskId, e.dataset.status, e.dataset.attempt ?? null, " \
        "e.dataset.index ?? null, (e.tagName === 'rect' ? e : e.querySelector('rect'))" \
        ".getAttribute('fill')])"
EDGES = "els => els.map(e => [e.dataset.from, e.dataset.to])"


def check_etl_page(opened: Opened, result_statuses: dict[str, tuple[str, int]]) -> None:
    assert opened.problems == []
    assert [url for url in opened.requests if not url.startswith("file:")] == []
    nodes = opened.all(NODES, ATTRS)
    assert sorted(n[0] for n in nodes) == sorted(result_statuses)  # one node per task
    for task_id, status, _, _, fill in nodes:
        assert status == result_statuses[task_id][0], task_id
        assert fill == STATUS_COLOURS[status], task_id
    bars = opened.all(BARS, ATTRS)
    per_task: dict[str, list[int]] = {}
    for task_id, status, attempt, index, fill in bars:
        per_task.setdefault(task_id, []).append(int(attempt))
        assert index is None  # no mapped task here
        assert fill == STATUS_COLOURS[status], (task_id, attempt)
    assert {t: sorted(a) for t, a in per_task.items()} == {
        t: list(range(1, n + 1)) for t, (_, n) in result_statuses.items() if n}
    statuses = {(b[0], int(b[2])): b[1] for b in bars}
    assert statuses[("validate", 1)] == statuses[("validate", 2)] == "failed"
    assert statuses[("validate", 3)] == "completed"
    assert opened.all("#gantt line.gantt-wait", "els => els.length") == 2  # two retry waits
    table = opened.page.locator("#tasks")
    assert table.is_visible()
    rows = opened.all("#tasks tbody tr", "els => els.map(e => e.dataset.taskId)")
    assert sorted(rows) == sorted(result_statuses)
    assert opened.page.locator("#errors pre").first.is_visible()


def test_result_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    result = run_quietly(etl_flow(tmp_path), {"data_source": "customers.csv"})
    assert result.status is RunStatus.FAILED
    assert {k: (t.status.value, t.attempts) for k, t in result.tasks.items()} == EXPECTED
    path = tmp_path / "report.html"
    result.to_html(path)
    opened = Opened(browser, path, "report")
    try:
        check_etl_page(opened, EXPECTED)
        # the graph's edges follow the dependencies
        assert opened.all("#dag path.dag-edge", "els => els.length") == 5
    finally:
        opened.close()


def test_store_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    from flowdsl.store import SqliteStore

    flow = etl_flow(tmp_path)
    with SqliteStore(tmp_path / "runs.db") as store:
        result = run_quietly(flow, {"data_source": "customers.csv"}, store=store)
        path = tmp_path / "store-report.html"
        text = store.report(result.run_id, path)  # the edges come from the store
    assert path.read_text(encoding="utf-8") == text
    live = tmp_path / "live-report.html"
    result.to_html(live)
    edges = {}
    for name, source in (("store-report", path), ("report-live", live)):
        opened = Opened(browser, source, name)
        try:
            check_etl_page(opened, EXPECTED)
            edges[name] = sorted(opened.all("#dag path.dag-edge", EDGES))
        finally:
            opened.close()
    assert edges["store-report"] == edges["report-live"] == sorted(
        [dep, step.id] for step in flow.compile().steps for dep in step.dependencies)


def test_store_report_draws_inferred_edges_like_the_live_one(browser: Any,
                                                             tmp_path: Path) -> None:
    """An edge inferred from a produced key (no parameter names the task) is recorded too."""
    from flowdsl.store import SqliteStore

    flow = Flow("inferred")

    @flow.task(produces=["rows"])
    def extract() -> dict[str, int]:
        return {"rows": 3}

    @flow.task
    def count(rows: int) -> int:
        return rows

    @flow.task
    def report(count: int) -> str:
        return f"{count} rows"

    with SqliteStore(tmp_path / "runs.db") as store:
        result = flow.run(store=store)
        store.report(result.run_id, tmp_path / "stored.html")
    result.to_html(tmp_path / "live.html")
    drawn = []
    for name in ("stored", "live"):
        opened = Opened(browser, tmp_path / f"{name}.html", f"inferred-{name}")
        try:
            assert opened.problems == []
            drawn.append(sorted(opened.all("#dag path.dag-edge", EDGES)))
        finally:
            opened.close()
    assert drawn[0] == drawn[1] == [["count", "report"], ["extract", "count"]]


def test_a_run_recorded_before_the_store_kept_edges_shows_tasks_only(tmp_path: Path) -> None:
    """A run whose row has no recorded edges (schema < 4) is still shown, without edges,
    unless the flow's dependencies are given."""
    import sqlite3

    from flowdsl.store import SqliteStore

    flow = etl_flow(tmp_path)
    path = tmp_path / "runs.db"
    result = run_quietly(flow, store=str(path))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET plan_edges = NULL")
    with SqliteStore(path) as store:
        bare = store.report(result.run_id)
        given = store.report(result.run_id,
                             dependencies={s.id: s.dependencies for s in flow.compile().steps})
    assert "recorded before the run store kept" in bare
    assert "recorded before the run store kept" not in given
    assert '"deps": ["load", "validate"]' in given and '"deps": ["load", "validate"]' not in bare


def flowdsl_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdsl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "NO_COLOR": "1"})


def test_cli_report_writes_a_report_that_opens(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "etl_pipeline.py").write_text(FLOW_SOURCE)
    ran = flowdsl_cli("run", "etl_pipeline.py", "--quiet", "--run-id", "r1", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr  # the run failed (transform)
    made = flowdsl_cli("report", "r1", "-o", "out.html", "--target", "etl_pipeline.py",
                       cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    opened = Opened(browser, tmp_path / "out.html", "cli-report")
    try:
        check_etl_page(opened, EXPECTED)
    finally:
        opened.close()
    bare = flowdsl_cli("report", "r1", "-o", "bare.html", cwd=tmp_path)  # edges from the store
    assert bare.returncode == 0, bare.stderr
    opened = Opened(browser, tmp_path / "bare.html", "cli-report-from-store")
    try:
        check_etl_page(opened, EXPECTED)
        assert len(opened.all("#dag path.dag-edge", EDGES)) == 5
    finally:
        opened.close()


def test_cli_report_unknown_run_exits_2(tmp_path: Path) -> None:
    (tmp_path / "etl_pipeline.py").write_text(FLOW_SOURCE)
    flowdsl_cli("run", "etl_pipeline.py", "--quiet", "--run-id", "r1", cwd=tmp_path)
    missing = flowdsl_cli("report", "r2", "-o", "out.html", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no run 'r2'" in missing.stderr
    assert not (tmp_path / "out.html").exists()


@pytest.mark.slow
def test_a_1000_task_report_draws_every_node_and_bar(browser: Any, tmp_path: Path) -> None:
    """A 1,000-task run's report draws all of it without a console error (how fast it opens
    is measured by benchmarks/bench_report.py, not here: timings are no pass/fail test)."""
    flow = Flow("chain")
    previous: list[str] = []
    for i in range(1000):
        flow.add_task(f"t{i:04d}", f"t{i}", lambda task_input: 1, dependencies=previous,
                      max_retries=0)
        previous = [f"t{i:04d}"]
    path = tmp_path / "big.html"
    flow.run().to_html(path)
    opened = Opened(browser, path, "report-1000")
    try:
        assert opened.problems == []
        assert opened.all(NODES, "els => els.length") == 1000
        assert opened.all(BARS, "els => els.length") == 1000
    finally:
        opened.close()


def test_store_report_on_every_store(browser: Any, tmp_path: Path, store_url: str) -> None:
    """The same report from SQLite and from PostgreSQL (the store's own attempt rows and the
    plan's edges it recorded: the same graph as the live report's)."""
    from flowdsl.store import open_store

    flow = etl_flow(tmp_path)
    store = open_store(store_url)
    try:
        result = run_quietly(flow, {"data_source": "customers.csv"}, store=store)
        path = tmp_path / "every-store.html"
        store.report(result.run_id, path)
    finally:
        store.close()
    kind = "postgresql" if store_url.startswith("postgres") else "sqlite"
    opened = Opened(browser, path, f"store-report-{kind}")
    try:
        check_etl_page(opened, EXPECTED)
        assert sorted(opened.all("#dag path.dag-edge", EDGES)) == sorted(
            [dep, step.id] for step in flow.compile().steps for dep in step.dependencies)
    finally:
        opened.close()


def test_element_bars_carry_their_index(browser: Any, tmp_path: Path) -> None:
    """A mapped task's elements are bars of their own with ``data-index``, on a row each
    (``fan[0]`` ...): every attempt in the live report (element 1's retry visible, with the wait
    before it), one bar per element in the report drawn from the store."""
    flow = Flow("elements")
    tries: dict[int, int] = {}

    @flow.task
    def items() -> list[int]:
        return [0, 1, 2]

    @flow.task(map_over="item", bind={"item": "items"}, retries=1, retry_wait=0)
    def fan(item: int) -> int:
        tries[item] = tries.get(item, 0) + 1
        if item == 1 and tries[item] == 1:
            raise ValueError("element 1 fails once")
        return item * 10

    from flowdsl.store import open_store

    store = tmp_path / "runs.db"
    result = flow.run(store=store, run_id="mapped")
    assert result.results["fan"] == [0, 10, 20]
    live, stored = tmp_path / "live.html", tmp_path / "stored.html"
    result.to_html(live)
    open_store(store).report("mapped", stored)
    for path, expected in ((live, [("1", "0"), ("1", "1"), ("1", "2"), ("2", "1")]),
                           (stored, [("1", "0"), ("1", "2"), ("2", "1")])):
        opened = Opened(browser, path, f"elements-{path.stem}")
        try:
            assert opened.problems == []
            fan_bars = [b for b in opened.all(BARS, ATTRS) if b[0] == "fan"]
            assert sorted((b[2], b[3]) for b in fan_bars) == expected
            labels = opened.all("#gantt text.gantt-label", "els => els.map(e => e.textContent)")
            assert [label for label in labels if label.startswith("fan")] == [
                "fan[0]", "fan[1]", "fan[2]"]
        finally:
            opened.close()
    opened = Opened(browser, live, "elements-live-wait")
    try:
        assert opened.all("#gantt line.gantt-wait", "els => els.length") == 1
    finally:
        opened.close()

