"""Conditions and trigger rules with a run store (SQLite and PostgreSQL): skipped and
condition-false statuses are journalled with their reasons, a predicate's error is stored,
and resume gives what an uninterrupted run gives."""

from __future__ import annotations

from typing import Any

from flowdsl import Flow, RunStatus, TaskStatus
from flowdsl.running.runtime import RESTORED
from flowdsl.store import open_store

COMPLETED, FAILED, SKIPPED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED


class Unlucky(Exception):
    pass


def build(calls: list[str], flags: dict[str, bool]) -> Flow:
    """choose -> branch (run_if false) -> after_branch, and summary (none_failed) after
    both; choose -> fragile (fails while
    flags["fail"]) -> join (none_failed) and cleanup (all_done); gated's predicate raises
    while flags["raise"]."""
    flow = Flow("conditions-store")

    @flow.task
    def choose() -> str:
        calls.append("choose")
        return "left"

    @flow.task(run_if=lambda choose: choose == "right")
    def branch(choose: str) -> str:
        calls.append("branch")
        return "right branch"

    @flow.task
    def after_branch(branch: str) -> str:
        calls.append("after_branch")
        return branch

    @flow.task
    def fragile(choose: str) -> str:
        calls.append("fragile")
        if flags["fail"]:
            raise ValueError("fragile broke")
        return "sturdy"

    @flow.task(trigger="none_failed")
    def join(fragile: str, branch: str = "no branch") -> str:
        calls.append("join")
        return f"{fragile}+{branch}"

    @flow.task(trigger="none_failed")
    def summary(choose: str, branch: str = "no branch") -> str:
        calls.append("summary")
        return f"{choose}/{branch}"

    @flow.task(trigger="all_done", depends_on=["fragile"])
    def cleanup() -> str:
        calls.append("cleanup")
        return "clean"

    def decide() -> bool:
        if flags["raise"]:
            raise Unlucky("no decision yet")
        return True

    @flow.task(run_if=decide)
    def gated() -> str:
        calls.append("gated")
        return "gated ran"

    return flow


def test_statuses_and_reasons_are_journalled(store_url: str) -> None:
    flow = build([], {"fail": True, "raise": True})
    first = flow.run(store=store_url, raise_on_failure=False)
    assert first.status is RunStatus.FAILED

    stored = open_store(store_url).get_run(first.run_id)["tasks"]
    assert stored["branch"]["status"] == "skipped"
    assert stored["branch"]["reason"] == "condition false"
    assert stored["after_branch"]["status"] == "skipped"
    assert "'branch'" in stored["after_branch"]["reason"]
    assert stored["join"]["status"] == "skipped"
    assert stored["join"]["reason"] == "upstream task 'fragile' failed"
    assert stored["cleanup"]["status"] == "completed"
    assert stored["gated"]["status"] == "failed" and stored["gated"]["attempts"] == 0
    assert stored["gated"]["error"] == "Unlucky: no decision yet"
    assert "Unlucky" in stored["gated"]["traceback"]
    assert {task_id: row["status"] for task_id, row in stored.items()} == {
        task_id: task.status.value for task_id, task in first.tasks.items()}


def test_resume_reevaluates_what_did_not_complete(store_url: str) -> None:
    first = build([], {"fail": True, "raise": True}).run(store=store_url,
                                                         raise_on_failure=False)

    calls: list[str] = []
    resumed = build(calls, {"fail": False, "raise": False}).run(store=store_url,
                                                                resume=first.run_id)

    assert resumed.status is RunStatus.SUCCEEDED
    # choose is restored, and summary (completed after a branch skipped by its condition,
    # which skips again); the clean-up that ran after fragile failed runs again after it
    # (a completed task is kept only when its upstream tasks are)
    assert sorted(calls) == ["cleanup", "fragile", "gated", "join"]
    assert resumed.tasks["choose"].reason == RESTORED
    assert resumed.tasks["summary"].reason == RESTORED
    assert resumed.results["summary"] == "left/no branch"
    assert resumed.tasks["cleanup"].reason is None
    assert resumed.tasks["branch"].status is SKIPPED
    assert resumed.tasks["branch"].reason == "condition false"
    assert resumed.results["join"] == "sturdy+no branch"
    assert resumed.tasks["gated"].status is COMPLETED and resumed.tasks["gated"].attempts == 1

    uninterrupted = build([], {"fail": False, "raise": False}).run()
    assert resumed.results == uninterrupted.results
    assert {t: task.status for t, task in resumed.tasks.items()} == {
        t: task.status for t, task in uninterrupted.tasks.items()}


def test_a_run_skipped_by_conditions_only_succeeded_and_resuming_it_runs_nothing(
        store_url: str) -> None:
    calls: list[str] = []
    first = build(calls, {"fail": False, "raise": False}).run(store=store_url)
    assert first.status is RunStatus.SUCCEEDED
    assert first.summary["skipped_tasks"] == 2

    again: list[str] = []
    resumed = build(again, {"fail": False, "raise": False}).run(store=store_url,
                                                                resume=first.run_id)
    assert resumed.status is RunStatus.SUCCEEDED and again == []

    run: Any = open_store(store_url).get_run(first.run_id)
    assert run["status"] == "succeeded"
    assert run["tasks"]["branch"]["reason"] == "condition false"
