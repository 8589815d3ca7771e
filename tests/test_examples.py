"""Each script in examples/ runs to completion as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

#: A line (or part of one) each known example prints when it worked.
KEY_LINES = {
    "data_processing.py": ["run succeeded", "Report for"],
    "practice_25_tasks.py": ["run succeeded", "context accuracy", "100.0%"],
    "seed_orchestrator.py": ["Execution summary (succeeded)", "Execution metrics"],
    "subflows.py": ["run succeeded", "orders: 3 rows kept", "customers: 2 rows kept"],
    "targets.py": ["run succeeded: ran load_sales, totals, summary_report",
                   "not run (absent from the result): forecast_report, train_forecast"],
}


def test_there_are_examples():
    assert EXAMPLES, "examples/ holds no script"
    assert set(KEY_LINES) <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script):
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip(), "the example printed nothing"
    for expected in KEY_LINES.get(script.name, []):
        assert expected in completed.stdout, f"{expected!r} not in output:\n{completed.stdout}"
    assert "Traceback" not in completed.stderr
