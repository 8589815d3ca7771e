"""The suite's own pytest settings (pyproject's ``addopts``) keep pytest's count line: CI and
a reader see how many tests passed, failed and were skipped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a pytest in a subprocess: a second or more
def test_pytest_with_the_projects_settings_prints_its_count_line(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "def test_passes():\n    assert 1 + 1 == 2\n\n"
        "@pytest.mark.skip(reason='shown in the count')\n"
        "def test_skipped():\n    pass\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\b1 passed, 1 skipped\b.* in \d+\.\d+s", last), proc.stdout
    assert "SKIPPED [1]" in proc.stdout  # -ra: the reason of each skip is listed
