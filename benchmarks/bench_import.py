"""``import flowdsl`` in a fresh interpreter against importing its dependencies alone
(attrs, tenacity, loguru, graphlib); target: at most 20 ms more.

Both are timed as whole subprocesses (interpreter start-up cancels out in the
difference). As a less noisy cross-check, ``python -X importtime`` run on
``import attrs, tenacity, loguru, graphlib; import flowdsl`` gives the cumulative
time of ``flowdsl`` once its dependencies are loaded, and its slowest own imports.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPS = "import attrs, tenacity, loguru, graphlib"
ROUNDS = 15


def python(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True)


def importtime_after_deps(repeat: int = 7):
    """(median ms of flowdsl's cumulative import time after its dependencies,
    the slowest modules imported for flowdsl by self time, from the last run)."""
    totals, slowest = [], []
    for _ in range(repeat):
        err = python("-X", "importtime", "-c", f"{DEPS}; import flowdsl").stderr
        rows = []  # (self µs, cumulative µs, module name indented by nesting level)
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line[12:].split("|", 2)
            rows.append((int(self_us), int(cumulative_us), name[1:].rstrip()))
        end = max(i for i, row in enumerate(rows) if row[2] == "flowdsl")
        start = end   # flowdsl's own imports: the indented lines printed just before it
        while start > 0 and rows[start - 1][2].startswith(" "):
            start -= 1
        totals.append(rows[end][1] / 1e3)
        slowest = sorted(rows[start:end + 1], reverse=True)[:8]
    return statistics.median(totals), [f"{name.strip()} {s / 1e3:.1f} ms" for s, c, name in slowest]


def test_import_dependencies(benchmark, record):
    benchmark.group = "import"
    benchmark.pedantic(python, args=("-c", DEPS), rounds=ROUNDS, warmup_rounds=2)
    record("import", "import dependencies")


def test_import_flowdsl(benchmark, record):
    benchmark.group = "import"
    benchmark.pedantic(python, args=("-c", "import flowdsl"), rounds=ROUNDS, warmup_rounds=2)
    after_deps_ms, slowest = importtime_after_deps()
    record("import", "import flowdsl", importtime_flowdsl_ms=round(after_deps_ms, 2),
           slowest_own_imports=slowest)
