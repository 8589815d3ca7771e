"""Each script in examples/ runs to completion as a user would run it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

#: A line (or part of one) each known example prints when it worked.
KEY_LINES = {
    "data_processing.py": ["run succeeded", "Report for"],
    "fan_out.py": ["run succeeded: 3 files counted by 3 tasks", "north.csv: 3 rows",
                   "south.csv: 5 rows", "total: 10 rows"],
    "practice_25_tasks.py": ["run succeeded", "context accuracy", "100.0%"],
    "seed_orchestrator.py": ["Execution summary (succeeded)", "Execution metrics"],
    "subflows.py": ["run succeeded", "orders: 3 rows kept", "customers: 2 rows kept"],
    "targets.py": ["run succeeded: ran load_sales, totals, summary_report",
                   "not run (absent from the result): forecast_report, train_forecast"],
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
