"""``import flowdsl`` in a fresh interpreter against importing its dependencies alone
(attrs, tenacity, loguru, graphlib); target (issue 16): at most 15 ms more.

``import flowdsl`` loads what declaring and compiling a flow need; the run side (runtime,
executors, observers) loads on the first run. So the first run's imports are reported
too (``-X importtime`` of ``import flowdsl`` plus a one-task ``flow.run()``), no target.

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


FIRST_RUN = ("import flowdsl; flow = flowdsl.Flow('first'); flow.task(id='one')(lambda: 1); "
             "flow.run()")


def importtime_first_run(repeat: int = 7) -> float:
    """Median ms of every import after the dependencies' for ``import flowdsl`` and a first
    run (the sum of the self times printed after graphlib's line)."""
    totals = []
    for _ in range(repeat):
        err = python("-X", "importtime", "-c", f"{DEPS}\n{FIRST_RUN}").stderr
        rows = [line for line in err.splitlines()
                if line.startswith("import time:") and "self [us]" not in line]
        start = max(i for i, line in enumerate(rows) if line.rstrip().endswith("| graphlib"))
        totals.append(sum(int(line[12:].split("|")[0]) for line in rows[start + 1:]) / 1e3)
    return statistics.median(totals)


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
    first_run_ms = importtime_first_run()
    print(f"\n-X importtime after the dependencies: import flowdsl {after_deps_ms:.1f} ms "
          f"(target 15), with a first run's imports {first_run_ms:.1f} ms")
    record("import", "import flowdsl", importtime_flowdsl_ms=round(after_deps_ms, 2),
           importtime_first_run_ms=round(first_run_ms, 2), slowest_own_imports=slowest)
