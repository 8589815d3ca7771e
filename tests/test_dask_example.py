"""examples/dask_pipeline.py runs as a user would run it (it starts a LocalCluster)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # a real cluster: seconds per test

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "dask_pipeline.py"
PACKAGE = ROOT / "flowdsl"
TASKS = ["load_data", "validate_data", "transform_data", "analyze_data", "generate_report"]


def test_dask_pipeline_example_exits_0_and_reports_each_task_and_its_worker():
    completed = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True,
                               text=True, timeout=180)

    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert "succeeded on Dask" in out, out
    for task_id in TASKS:
        line = next((text for text in out.splitlines() if text.startswith(task_id + " ")), None)
        assert line is not None, f"no line for {task_id}:\n{out}"
        assert "completed" in line
        assert re.search(r"tcp://[\d.]+:\d+$", line), line  # the worker that ran it
    assert "logged on a worker, seen on the driver" in out
    assert "Report: quality score" in out
    # Dask may log tracebacks of its own while the cluster shuts down (closed comms between
    # the scheduler and the workers): noise. A traceback through flowdsl's package or the
    # example is not. (By their full paths: a clone in a folder named flowdsl, with its venv
    # inside, has "/flowdsl/" in every path of Dask's own frames too.)
    ours = (f'File "{PACKAGE}{os.sep}', f'File "{SCRIPT}"')
    for block in completed.stderr.split("Traceback (most recent call last):")[1:]:
        assert not any(frame in block for frame in ours), block
