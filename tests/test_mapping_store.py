"""Mapped tasks in the run store: each element's completion is journalled; resuming restores
the completed elements and runs only the others; a crash mid-map never re-runs a recorded
element. On SQLite and PostgreSQL (``store_url``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from flowdsl import Flow, RunStatus, TaskStatus


def mapped_flow(calls: list[int], broken: set[int]) -> Flow:
    flow = Flow("mapped")

    @flow.task(map_over="items")
    def each(items: int) -> int:
        calls.append(items)
        if items in broken:
            raise ValueError(f"element {items} is broken")
        return items * 10

    @flow.task
    def total(each: list[int]) -> int:
        return sum(each)

    return flow


def test_resume_runs_only_the_elements_that_did_not_complete(store_url: str) -> None:
    calls: list[int] = []
    broken = {2}
    flow = mapped_flow(calls, broken)
    first = flow.run({"items": [0, 1, 2, 3]}, store=store_url, raise_on_failure=False)
    assert first.status is RunStatus.FAILED
    assert sorted(calls) == [0, 1, 2, 3]
    broken.clear()
    calls.clear()
    second = flow.run(store=store_url, resume=first.run_id)
    assert second.status is RunStatus.SUCCEEDED
    assert calls == [2]
    assert second.results["each"] == [0, 10, 20, 30]
    assert second.results["total"] == 60
    elements = second.tasks["each"].elements
    assert [e.status for e in elements] == [TaskStatus.COMPLETED] * 4
    assert [e.reason is not None for e in elements] == [True, True, False, True]
    assert second.summary["elements"] == 1


def test_a_completed_map_is_restored_whole_with_its_elements(store_url: str) -> None:
    calls: list[int] = []
    flow = mapped_flow(calls, set())
    first = flow.run({"items": [1, 2]}, store=store_url)
    calls.clear()

    @flow.task
    def added(total: int) -> int:  # a task added since: the map is kept
        return total + 1

    second = flow.run(store=store_url, resume=first.run_id, force=True)
    assert calls == []
    assert second.results["added"] == 31
    assert [e.result for e in second.tasks["each"].elements] == [10, 20]


def test_force_with_a_changed_mapped_value_reruns_every_element(store_url: str) -> None:
    calls: list[int] = []
    broken = {3}
    flow = mapped_flow(calls, broken)
    first = flow.run({"items": [1, 2, 3]}, store=store_url, raise_on_failure=False)
    broken.clear()
    calls.clear()
    second = flow.run({"items": [1, 2, 4]}, store=store_url, resume=first.run_id, force=True)
    assert sorted(calls) == [1, 2, 4]
    assert second.results["each"] == [10, 20, 40]


CRASH_FLOW = textwrap.dedent('''
    import os, sys, time
    from flowdsl import Flow

    flow = Flow("crash-map")

    @flow.task(map_over="items")
    def each(items, log):
        with open(log, "a") as handle:
            handle.write(f"{items}\\n")
        if items == 3 and not os.path.exists(log + ".resumed"):
            with open(log + ".ready", "w"):
                pass
            time.sleep(60)  # killed here
        return items * 2

    @flow.task
    def total(each):
        return sum(each)

    if __name__ == "__main__":
        store, run_id, log, mode = sys.argv[1:5]
        if mode == "resume":
            open(log + ".resumed", "w").close()
            result = flow.run(store=store, resume=run_id)
        else:
            result = flow.run({"items": [0, 1, 2, 3, 4], "log": log}, store=store, run_id=run_id)
        print(result.results["total"])
''')


@pytest.mark.slow
def test_a_crash_mid_map_never_reruns_a_recorded_element(store_url: str,
                                                         tmp_path: Path) -> None:
    script = tmp_path / "crash_map.py"
    script.write_text(CRASH_FLOW)
    log = tmp_path / "log.txt"
    args = [sys.executable, str(script), store_url, "run-1", str(log)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([*args, "run"], env=env, stdout=subprocess.PIPE)
    ready = Path(str(log) + ".ready")
    for _ in range(600):  # the element in flight says it started
        if ready.exists() or process.poll() is not None:
            break
        time.sleep(0.05)
    assert ready.exists()
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run([*args, "resume"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "20"
    counts = Counter(log.read_text().split())
    assert counts == {"0": 1, "1": 1, "2": 1, "3": 2, "4": 1}


def test_show_lists_the_failed_elements_with_index_and_error(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    flow = mapped_flow([], {1, 3})
    result = flow.run({"items": [0, 1, 2, 3]}, store=store, raise_on_failure=False)
    shown = subprocess.run([sys.executable, "-m", "flowdsl", "show", result.run_id,
                            "--store", store], capture_output=True, text=True, timeout=60)
    assert shown.returncode in (0, 1), shown.stderr
    text = shown.stdout
    assert "element 1" in text and "element 3" in text
    assert "element 1 is broken" in text and "element 3 is broken" in text


