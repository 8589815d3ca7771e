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
        rows = []
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = (part.strip() for part in line[12:].split("|", 2))
            rows.append((int(self_us), int(cumulative_us), name))
        start = max(i for i, row in enumerate(rows) if row[2] == "graphlib") + 1
        mine = rows[start:]
        totals.append(next(c for s, c, name in mine if name == "flowdsl") / 1e3)
        slowest = sorted(mine, reverse=True)[:8]
    return statistics.median(totals), [f"{name} {s / 1e3:.1f} ms" for s, c, name in slowest]


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
