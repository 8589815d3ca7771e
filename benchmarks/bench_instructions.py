"""Instructions per task, counted with valgrind's callgrind (deterministic on a shared
machine, unlike timings): the 1,000-task no-op chain, the 1,000-task produces chain and the
plain loop calling the same handlers.

Method: a fresh interpreter (``PYTHONHASHSEED=0``) under ``valgrind --tool=callgrind`` builds
the shape, runs it once to warm up, then runs it K more times; the count for one run is
(total with K=3 - total with K=1) / 2, which cancels start-up, imports, compiling and the
warm-up. Per task = that / tasks; the overhead of flowdsl = flowdsl per task - plain loop per
task. Skipped where valgrind is absent (``apt-get install valgrind``).

Run alone: ``python benchmarks/bench_instructions.py [SOURCE_ROOT]`` prints the table (the
root defaults to this checkout: pass another one to measure a baseline from the same script).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = 1000
#: (case, implementation) -> what the subprocess runs
CASES = [("chain-1000", "plain loop"), ("chain-1000", "flowdsl"),
         ("produces-chain-1000", "plain loop"), ("produces-chain-1000", "flowdsl")]

SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {bench!r}]
from shapes import chain
shape = chain({n}, produces={produces})
if {flowdsl}:
    flow = shape.build_flow()
    flow.compile()
    def run():
        return flow.run(shape.initial)
else:
    run = shape.plain_loop()
run()  # warm-up
for _ in range({k}):
    run()
"""


def _total(root: Path, case: str, impl: str, k: int) -> int:
    code = SCRIPT.format(root=str(root), bench=str(HERE), n=TASKS,
                         produces=case.startswith("produces"), flowdsl=impl == "flowdsl", k=k)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             "-c", code],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        text = out.read_text()
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    assert match, "callgrind wrote no total"
    return int(match.group(1))


@lru_cache(maxsize=None)
def per_task(case: str, impl: str, root: Path = ROOT) -> float:
    """Instructions of one run of ``case`` by ``impl``, divided by its tasks."""
    return (_total(root, case, impl, 3) - _total(root, case, impl, 1)) / 2 / TASKS


needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed")


@needs_valgrind
@pytest.mark.parametrize(("case", "impl"), CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_instructions_per_task(case: str, impl: str, results: Any) -> None:
    count = per_task(case, impl)
    assert count > 0
    results.instructions[(case, impl)] = count  # printed beside the timings at the end
    line = f"{case:22} {impl:11} {count:12,.0f} instructions/task"
    if impl == "flowdsl":
        line += f"   overhead {count - per_task(case, 'plain loop'):,.0f}/task"
    print(line)


def main(root: Path) -> None:
    for case in ("chain-1000", "produces-chain-1000"):
        plain, flowdsl = per_task(case, "plain loop", root), per_task(case, "flowdsl", root)
        print(f"{case:22} plain loop {plain:10,.0f}  flowdsl {flowdsl:10,.0f}  "
              f"overhead {flowdsl - plain:10,.0f} instructions/task")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
