"""Each script in examples/ runs to completion as a user would run it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

#: A line (or part of one) each known example prints when it worked.
KEY_LINES = {
    "branching.py": ["full_rebuild  skipped (condition false)",
                     "reindex       skipped (upstream task 'full_rebuild' was skipped",
                     "published the incremental load of 120 rows",
                     "published the full load of 5000 rows (reindexed 5000 rows)",
                     "run failed", "publish       skipped (upstream task 'check_volume' failed)",
                     "nothing published; cleanup: temporary files removed"],
    "data_processing.py": ["run succeeded", "Report for"],
    "fan_out.py": ["run succeeded: 3 files counted by 3 tasks", "north.csv: 3 rows",
                   "south.csv: 5 rows", "total: 10 rows"],
    "practice_25_tasks.py": ["run succeeded", "context accuracy", "100.0%"],
    "seed_orchestrator.py": ["Execution summary (succeeded)", "Execution metrics"],
    "subflows.py": ["run succeeded", "orders: 3 rows kept", "customers: 2 rows kept"],
    "targets.py": ["run succeeded: ran load_sales, totals, summary_report",
                   "not run (absent from the result): forecast_report, train_forecast"],
    "wine.py": ["== first run", "== second run", "cached from run",
                "report         failed     KeyError: 'alchohol'",
                "== the bug fixed, the failed run resumed", "restored from the run store",
                "test accuracy"],
}


def test_there_are_examples():
    assert EXAMPLES, "examples/ holds no script"
    assert set(KEY_LINES) <= {path.name for path in EXAMPLES}


def _case(path: Path) -> object:
    if path.name == "dask_pipeline.py":  # starts a LocalCluster (tests/test_dask_example.py
        # checks its output in detail)
        no_dask = importlib.util.find_spec("distributed") is None
        return pytest.param(path, marks=[pytest.mark.slow, pytest.mark.skipif(
            no_dask, reason="needs the dask extra")])
    if path.name == "wine.py":  # scikit-learn and pandas (the dev extra); imports take seconds
        missing = [name for name in ("sklearn", "pandas") if importlib.util.find_spec(name) is None]
        return pytest.param(path, marks=[pytest.mark.slow, pytest.mark.skipif(
            bool(missing), reason=f"needs {', '.join(missing)} (pip install -e '.[dev]')")])
    return path


@pytest.mark.parametrize("script", [_case(path) for path in EXAMPLES],
                         ids=lambda path: path.name)
def test_example_runs(script):
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip(), "the example printed nothing"
    for expected in KEY_LINES.get(script.name, []):
        assert expected in completed.stdout, f"{expected!r} not in output:\n{completed.stdout}"
    # Dask may log tracebacks of its own while a cluster shuts down: noise, unless they pass
    # through flowdsl's package or the example
    for block in completed.stderr.split("Traceback (most recent call last):")[1:]:
        assert "/flowdsl/" not in block and script.name not in block, block


@pytest.mark.slow
def test_resume_demo_fails_then_resumes_from_the_cli(tmp_path):
    """README, "The flowdsl command": resume_demo.py fails, then resumes with 3 tasks restored."""
    demo = str(ROOT / "examples" / "resume_demo.py")
    env = {key: value for key, value in os.environ.items() if key != "PUBLISH_SERVICE_UP"}

    failed = subprocess.run([sys.executable, "-m", "flowdsl", "run", demo, "--run-id", "demo-1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    resumed = subprocess.run(
        [sys.executable, "-m", "flowdsl", "run", demo, "--resume", "demo-1"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, env={**env, "PUBLISH_SERVICE_UP": "1"})

    assert failed.returncode == 1, failed.stderr
    assert "run demo-1 of flow 'resume_demo' failed: 3/4 tasks succeeded, 1 failed" in failed.stdout
    assert "ConnectionError: report service unavailable" in failed.stdout
    assert f"resume with: flowdsl run {demo}:flow --resume demo-1" in failed.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert "succeeded: 4/4 tasks succeeded" in resumed.stdout
    assert "(3 restored from the run store)" in resumed.stdout
    assert resumed.stdout.count("restored from the run store") == 4  # 3 rows and the summary


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn")
def test_wine_example_caches_the_second_run_and_resumes_a_fix_without_force(tmp_path):
    store = tmp_path / "wine.db"
    completed = subprocess.run([sys.executable, str(ROOT / "examples" / "wine.py"), str(store)],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs = completed.stdout.split("== ")[1:]
    assert [r.split(":")[0] for r in runs] == [
        "first run", "second run", "a run with a bug in report",
        "the bug fixed, the failed run resumed"]
    first_id = runs[0].split()[3]

    def rows(block):
        return {line.split()[0]: line for line in block.splitlines()[1:]
                if line.startswith("   ")}

    second = rows(runs[1])
    assert set(second) == {"load", "clean", "standardised", "split", "model_scores",
                           "class_profile", "report"}
    for task, line in second.items():  # DataFrames key the cache through the typed codec
        if task != "report":
            assert f"cached from run {first_id}" in line, line
    assert runs[1].splitlines()[0].endswith("6 cached")
    assert "ran in" in second["report"]  # cache=False: it runs every time
    failed = rows(runs[2])
    assert "failed" in failed["report"]
    resumed = rows(runs[3])
    assert all("restored from the run store" in line for task, line in resumed.items()
               if task != "report")
    assert "ran in" in resumed["report"] and "succeeded" in runs[3].splitlines()[0]
    # the store: a real SQLite file holding the four runs' sessions
    from flowdsl.store import SqliteStore

    with SqliteStore(store, readonly=True) as opened:
        assert len(opened.runs()) == 3
