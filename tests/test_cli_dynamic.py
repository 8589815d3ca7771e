"""`flowdsl plan`, `graph` and `run --target` on second-wave flows: inferred edges, mapped,
conditional and included tasks (real subprocess, as users run it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import ROOT, flowdsl, one_line_error, write

SUBFLOWS = ROOT / "examples" / "subflows.py"
TARGETS = ROOT / "examples" / "targets.py"

DYNAMIC = '''
from flowdsl import Flow

flow = Flow("dynamic")
sub = Flow("sub")
sub.task(id="inner")(lambda seed: seed)
flow.include(sub, prefix="part")

@flow.task(produces=["files"])
def find():
    return {"files": ["a", "b"]}

@flow.task(map_over="path", bind={"path": "key:files"})
def parse(path):
    return path.upper()

def wanted(parse):
    return bool(parse)

@flow.task(run_if=wanted, trigger="none_failed")
def publish(parse):
    return parse
'''


@pytest.fixture
def dynamic(tmp_path: Path) -> Path:
    return write(tmp_path / "dynamic.py", DYNAMIC)


def test_plan_marks_inferred_edges_and_mapped_conditional_included_tasks(
        tmp_path: Path, dynamic: Path) -> None:
    shown = flowdsl(tmp_path, "plan", f"{dynamic}:flow")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "find (inferred from key files)" in out
    assert "mapped over path" in out
    assert "conditional (run_if wanted)" in out and "trigger none_failed" in out
    assert "included (part)" in out and "gathers sub-flow 'part'" in out


def test_graph_draws_stacked_mapped_nodes_dashed_inferred_edges_and_includes(
        tmp_path: Path, dynamic: Path) -> None:
    mermaid = flowdsl(tmp_path, "graph", f"{dynamic}:flow")
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert any(line.strip().startswith("parse@{ shape: processes") for line in lines)
    assert '    find -. "key files" .-> parse' in lines
    assert "    parse --> publish" in lines
    assert any(line.strip().startswith('subgraph include0["included: part"]') for line in lines)

    dot = flowdsl(tmp_path, "graph", f"{dynamic}:flow", "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    assert '"find" -> "parse" [style=dashed, label="key files"];' in dot.stdout
    assert "shape=box3d" in dot.stdout and "shape=hexagon" in dot.stdout
    assert 'subgraph "cluster_part" {' in dot.stdout
    assert dot.stdout.count("{") == dot.stdout.count("}")


def test_plan_with_target_lists_only_needed_tasks_and_inputs(tmp_path: Path) -> None:
    shown = flowdsl(tmp_path, "plan", f"{TARGETS}:sales", "--target", "summary_report")
    assert shown.returncode == 0, shown.stderr
    assert "summary_report" in shown.stdout and "train_forecast" not in shown.stdout
    assert "horizon" not in shown.stdout and "region" in shown.stdout


def test_run_with_targets_runs_only_them_and_their_ancestors(tmp_path: Path) -> None:
    ran = flowdsl(tmp_path, "run", f"{TARGETS}:sales", "--target", "summary_report",
                  "--target", "totals", "--set", "region=eu", "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert set(record["tasks"]) == {"load_sales", "totals", "summary_report"}
    assert record["summary"]["total_tasks"] == 3


def test_an_unknown_target_is_a_usage_error_with_a_suggestion(tmp_path: Path) -> None:
    ran = flowdsl(tmp_path, "run", f"{TARGETS}:sales", "--target", "summary_reprt",
                  "--set", "region=eu")
    assert ran.returncode == 2
    assert "did you mean 'summary_report'" in one_line_error(ran)


def test_subflows_example_plan_through_the_cli(tmp_path: Path) -> None:
    shown = flowdsl(tmp_path, "plan", f"{SUBFLOWS}:weekly")
    assert shown.returncode == 0, shown.stderr
    assert "orders.parse" in shown.stdout and "customers.summary" in shown.stdout
    assert "gathers sub-flow 'orders'" in shown.stdout


def test_graph_with_target_draws_only_the_target_plan(tmp_path: Path) -> None:
    drawn = flowdsl(tmp_path, "graph", f"{TARGETS}:sales", "--target", "summary_report",
                    "--format", "dot")
    assert drawn.returncode == 0, drawn.stderr
    assert '"totals" -> "summary_report"' in drawn.stdout
    assert "train_forecast" not in drawn.stdout


BRANCHING = ROOT / "examples" / "branching.py"


def test_run_shows_a_branch_not_taken_and_a_clean_up_after_a_failure(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    taken = flowdsl(tmp_path, "run", f"{BRANCHING}:nightly", "--set", "new_rows=[1, 2, 3]",
                    "--store", store)
    assert taken.returncode == 0, taken.stderr  # skipped by a condition: still succeeded
    rows = {line.split()[0]: line for line in taken.stdout.splitlines() if line.strip()}
    assert "skipped" in rows["full_rebuild"] and "condition false" in rows["full_rebuild"]
    assert "upstream task 'full_rebuild' was skipped: condition false" in rows["reindex"]
    assert "completed" in rows["publish"] and "completed" in rows["cleanup"]

    broken = flowdsl(tmp_path, "run", f"{BRANCHING}:nightly", "--set", "new_rows=null",
                     "--store", store, "--json")
    assert broken.returncode == 1, broken.stderr
    tasks = json.loads(broken.stdout)["tasks"]
    assert tasks["check_volume"]["status"] == "failed"
    assert tasks["publish"]["status"] == "skipped"
    assert tasks["publish"]["reason"] == "upstream task 'check_volume' failed"
    assert tasks["cleanup"]["status"] == "completed"  # all_done: whatever happened


def test_plan_marks_the_branching_example(tmp_path: Path) -> None:
    shown = flowdsl(tmp_path, "plan", f"{BRANCHING}:nightly")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines()
            if line[:1].isdigit()}
    assert "conditional (run_if is_small)" in rows["incremental"]
    assert "conditional (run_if is_large)" in rows["full_rebuild"]
    assert "trigger none_failed" in rows["publish"] and "trigger all_done" in rows["cleanup"]
    assert "conditional" not in rows["reindex"] and "trigger" not in rows["reindex"]


def test_graph_draws_conditional_tasks_as_hexagons_and_labels_triggers(tmp_path: Path) -> None:
    mermaid = flowdsl(tmp_path, "graph", f"{BRANCHING}:nightly")
    assert mermaid.returncode == 0, mermaid.stderr
    lines = [line.strip() for line in mermaid.stdout.splitlines()]
    assert any(line.startswith('incremental{{"incremental') and "if is_small" in line
               for line in lines)
    assert any(line.startswith('publish["publish') and "trigger none_failed" in line
               for line in lines)
    assert any(line.startswith('reindex["reindex') for line in lines)  # a plain box

    dot = flowdsl(tmp_path, "graph", f"{BRANCHING}:nightly", "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    node = next(line for line in dot.stdout.splitlines() if line.strip().startswith('"full_rebuild" ['))
    assert "shape=hexagon" in node and "if is_large" in node
    assert "trigger all_done" in next(line for line in dot.stdout.splitlines()
                                      if line.strip().startswith('"cleanup" ['))
