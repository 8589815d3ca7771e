"""How fast a 1,000-task run's HTML report opens in headless Chromium (DESIGN: under 2 s).

The page times itself: ``body[data-gantt-ms]`` and ``body[data-dag-ms]`` hold
``performance.now()`` when the Gantt chart and then the graph were drawn. Each round loads
the file in a fresh page; the benchmark's own time is the whole load (navigation, scripts,
layout, drawing) and ``extra_info`` keeps the page's figures of the last round.

    python -m pytest benchmarks/bench_report.py
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from flowdsl import Flow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    flow = Flow("chain")
    previous: list[str] = []
    for i in range(1000):
        flow.add_task(f"t{i:04d}", f"t{i}", lambda task_input: 1, dependencies=previous,
                      max_retries=0)
        previous = [f"t{i:04d}"]
    path = tmp_path_factory.mktemp("report") / "big.html"
    flow.run().to_html(path)
    return path


def test_report_1000_tasks_opens(benchmark: Any, report_1000: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        drawn: dict[str, int] = {}

        def load() -> None:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report_1000.resolve().as_uri())
            page.wait_for_selector("body[data-drawn]", timeout=30_000)
            body = page.locator("body")
            drawn["gantt_ms"] = int(body.get_attribute("data-gantt-ms") or 0)
            drawn["dag_ms"] = int(body.get_attribute("data-dag-ms") or 0)
            page.close()

        benchmark.group = "report"
        benchmark.pedantic(load, rounds=5, warmup_rounds=1)
        benchmark.extra_info.update(drawn)
        browser.close()
