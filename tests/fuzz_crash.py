"""The crash fuzzer (issue 11): random flows with a run store, interrupted by SIGKILL or
SIGINT at a random moment, resumed in new processes until the run ends, then compared with
an uninterrupted run and audited.

A trial (all of it decided by its seed, except where the signal lands):
- a random DAG of 10-60 tasks: sync and async handlers; some produce a key that a later task
  reads by name; some write the shared state; some fail their first attempt (retries=1);
  ``max_concurrency`` 1 or 4;
- every handler appends ``done <task> <pid>`` to an external side-effect log just before it
  returns (the effect a real task would have on the world);
- the run starts in a subprocess and gets SIGKILL or SIGINT once the log shows a random
  number of completions plus a random extra delay;
- the run is resumed in new processes until it has ended (a run interrupted before it was
  opened is started again);
- audit: the results and shared state equal those of an uninterrupted run; every task the
  store held completed when the signal landed ran exactly once in total; every task ran;
  ``PRAGMA integrity_check`` is ok; the finished run has no ``running`` task or attempt row.

Run by hand: ``python -m tests.fuzz_crash --trials 500 [--seed N] [--keep DIR]``.
The bounded version runs in the test suite (tests/test_crash_fuzz.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Trial", "flow_source", "signal_of", "run_trial", "main"]

RUNNER = textwrap.dedent('''

    def canon(value):
        """A text form that keeps types (a tuple is not a list) and ignores set order."""
        if isinstance(value, (set, frozenset)):
            return f"{type(value).__name__}{sorted(map(canon, value))}"
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}{[canon(v) for v in value]}"
        if isinstance(value, dict):
            return f"{type(value).__name__}{sorted((canon(k), canon(v)) for k, v in value.items())}"
        return f"{type(value).__name__}:{value!r}"


    def outcome(result):
        return {"status": result.status.value, "results": canon(dict(result.results)),
                "shared": canon(dict(result.context.shared_state))}


    if __name__ == "__main__":
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        store, run_id, log, mode, concurrency = sys.argv[1:6]
        options = {"store": store, "max_concurrency": int(concurrency)}
        try:
            if mode == "resume":
                result = flow.run(resume=run_id, **options)
            else:
                result = flow.run({"log": log}, run_id=run_id, **options)
        except KeyboardInterrupt:
            sys.exit(130)
        print(json.dumps(outcome(result)), flush=True)
        sys.exit(0 if result.status.value == "succeeded" else 1)
''')


def flow_source(seed: int) -> tuple[str, int, int]:
    """A flow file for ``seed``; returns (source, number of tasks, max_concurrency)."""
    rng = random.Random(seed)
    n = rng.randint(10, 60)
    # "tiny": no pauses, so the store's transactions take most of the time; "sync": also all
    # handlers sync at concurrency 1 (no event loop: a Ctrl-C lands in whatever runs)
    shape = rng.choice(("mixed", "tiny", "sync"))
    tiny = shape != "mixed"
    concurrency = 1 if shape == "sync" else rng.choice((1, 4))
    lines = [
        "import asyncio, json, os, time",
        "from flowdsl import Flow, current_task",
        "",
        f"flow = Flow('fuzz{seed}')",
        "",
        "def effect(log, task_id):",
        "    with open(log, 'a') as handle:",
        "        handle.write(f'done {task_id} {os.getpid()}\\n')",
        "",
    ]
    produced: list[tuple[int, str]] = []  # (task index, key)
    for i in range(n):
        tid = f"t{i:02d}"
        parents = sorted(rng.sample(range(i), k=min(i, rng.randint(0, 3))))
        reads = [key for j, key in produced if rng.random() < 0.15][:2]
        # a reader depends on its key's producer (so its value is the producer's, as in an
        # uninterrupted run, whatever the concurrency)
        parents = sorted(set(parents) | {j for j, key in produced if key in reads})
        key = f"k{i:02d}" if rng.random() < 0.3 else None
        writes = rng.random() < 0.3
        flaky = rng.random() < 0.15
        is_async = shape != "sync" and rng.random() < 0.4
        pause = 0.0 if tiny else rng.choice((0.0, 0.0, 0.001, 0.002, 0.004))
        params = [f"t{p:02d}" for p in parents] + reads + ["log"] + (["context"] if writes else [])
        options = [f"priority={rng.randint(2, 4)}"]
        if key:
            options.append(f"produces=[{key!r}]")
        if flaky:
            options.append("retries=1, retry_wait=0")
        total = " + ".join([str(rng.randint(1, 99))] + [f"t{p:02d}['n']" for p in parents]
                           + [f"len({r})" for r in reads])
        body = [
            f"@flow.task({', '.join(options)})",
            f"{'async ' if is_async else ''}def {tid}({', '.join(params)}):",
        ]
        if flaky:
            body.append("    if current_task().attempt == 1:")
            body.append(f"        raise RuntimeError('transient failure of {tid}')")
        if pause:
            body.append(f"    {'await asyncio.sleep' if is_async else 'time.sleep'}({pause})")
        elif is_async:
            body.append("    await asyncio.sleep(0)")
        body.append(f"    value = {{'n': {total}, 'parents': {tuple(f't{p:02d}' for p in parents)!r}}}")
        if key:
            body.append(f"    value[{key!r}] = 'v' * (value['n'] % 7 + 1)")
        if writes:
            body.append(f"    context.shared_state['w{i:02d}'] = (value['n'], {i})")
        body.append(f"    effect(log, {tid!r})")
        body.append("    return value")
        lines += body + [""]
        if key:
            produced.append((i, key))
    return "\n".join(lines) + RUNNER, n, concurrency


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(path: Path) -> list[tuple[str, int]]:
    found = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "done":
            found.append((parts[1], int(parts[2])))
    return found


def _rows(store: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@dataclass
class Trial:
    """What one trial did and found (``problems`` empty when it passed)."""

    seed: int
    tasks: int = 0
    concurrency: int = 1
    signal_name: str = ""
    completed_at_signal: int = 0
    sessions: int = 0
    problems: list[str] = field(default_factory=list)


def _spawn(script: Path, store: Path, log: Path, mode: str, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), str(store), "fuzz", str(log), mode, str(concurrency)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SIGNALS = {"kill": (signal.SIGKILL,), "int": (signal.SIGINT,),
           "both": (signal.SIGKILL, signal.SIGINT)}


def signal_of(seed: int, signals: str = "both") -> tuple[random.Random, signal.Signals]:
    """The random source of trial ``seed`` and the signal it sends (decided by the seed)."""
    rng = random.Random(seed * 7919 + 1)
    return rng, rng.choice(SIGNALS[signals])


def run_trial(seed: int, folder: Path, timeout: float = 60.0, signals: str = "both") -> Trial:
    """One trial in ``folder``; never raises for a finding (see ``Trial.problems``)."""
    rng, which = signal_of(seed, signals)
    source, n, concurrency = flow_source(seed)
    trial = Trial(seed, n, concurrency)
    script = folder / f"fuzzflow{seed}.py"
    script.write_text(source)
    store, log = folder / "runs.db", folder / "log.txt"
    log.touch()
    trial.signal_name = which.name
    wait_for = rng.randint(0, max(0, n - 2))  # completions before the signal
    extra = rng.uniform(0.0, 0.006)

    proc = _spawn(script, store, log, "start", concurrency)
    deadline = time.monotonic() + timeout
    try:
        while len(_log(log)) < wait_for and proc.poll() is None:
            if time.monotonic() > deadline:
                trial.problems.append("the first run did not progress")
                return trial
            time.sleep(0.0005)
        time.sleep(extra)
        if proc.poll() is None:
            proc.send_signal(which)
        proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    exists = bool(store.exists() and store.stat().st_size and
                  _rows(store, "SELECT 1 FROM runs WHERE run_id = 'fuzz'"))
    completed_at_signal: set[str] = set()
    if exists:
        completed_at_signal = {row[0] for row in _rows(
            store, "SELECT task_id FROM tasks WHERE run_id = 'fuzz' AND status = 'completed'")}
    trial.completed_at_signal = len(completed_at_signal)

    final: dict[str, Any] | None = None
    for _ in range(4):  # resume until the run has ended
        mode = "resume" if exists else "start"
        proc = _spawn(script, store, log, mode, concurrency)
        out, err = proc.communicate(timeout=timeout)
        exists = True
        if proc.returncode == 0:
            final = json.loads(out)
            break
        trial.problems.append(f"{mode} exited {proc.returncode}: {err.strip()[-400:]}")
        if "ResumeError" in err or "StoreError" in err:
            break
    if final is None:
        trial.problems.append("the run never ended")
        return trial

    module = _load(script, f"fuzzflow{seed}_clean")
    clean = module.outcome(module.flow.run({"log": str(folder / "clean-log.txt")},
                                           max_concurrency=concurrency))
    if final != clean:
        trial.problems.append(f"the resumed run differs from an uninterrupted one: "
                              f"{final} != {clean}")
    done = Counter(task for task, _ in _log(log))
    for task in sorted(completed_at_signal):
        if done[task] != 1:
            trial.problems.append(f"{task} was completed at the signal but ran {done[task]} times")
    missing = {f"t{i:02d}" for i in range(n)} - set(done)
    if missing:
        trial.problems.append(f"never ran: {sorted(missing)}")
    check = _rows(store, "PRAGMA integrity_check")
    if check != [("ok",)]:
        trial.problems.append(f"integrity_check: {check}")
    status = _rows(store, "SELECT status FROM runs WHERE run_id = 'fuzz'")
    if status != [("succeeded",)]:
        trial.problems.append(f"run status in the store: {status}")
    running = _rows(store, "SELECT 'task', task_id FROM tasks WHERE run_id = 'fuzz' AND "
                           "status != 'completed' UNION ALL SELECT 'attempt', task_id FROM "
                           "attempts WHERE run_id = 'fuzz' AND status = 'running'")
    if running:
        trial.problems.append(f"rows left unfinished in a finished run: {running}")
    trial.sessions = len(_rows(store, "SELECT 1 FROM sessions WHERE run_id = 'fuzz'"))
    return trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_crash", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()),
                        help="the first trial's seed (trial i uses seed + i)")
    parser.add_argument("--keep", type=Path, help="keep each failing trial's files here")
    parser.add_argument("--signals", choices=sorted(SIGNALS), default="both",
                        help="which signal interrupts the first run (default: either)")
    args = parser.parse_args(argv)
    failed: list[Trial] = []
    signals: Counter[str] = Counter()
    started = time.monotonic()
    for i in range(args.trials):
        seed = args.seed + i
        with tempfile.TemporaryDirectory(prefix=f"fuzz{seed}-") as tmp:
            trial = run_trial(seed, Path(tmp), signals=args.signals)
            signals[trial.signal_name] += 1
            if trial.problems:
                failed.append(trial)
                if args.keep:
                    target = args.keep / f"seed{seed}"
                    subprocess.run(["cp", "-r", tmp, str(target)], check=False)
        status = "FAIL" if trial.problems else "ok"
        print(f"trial {i + 1}/{args.trials} seed {seed}: {trial.tasks} tasks, concurrency "
              f"{trial.concurrency}, {trial.signal_name} after {trial.completed_at_signal} "
              f"completions, {trial.sessions} sessions: {status}", flush=True)
        for problem in trial.problems:
            print(f"    {problem}", flush=True)
    took = time.monotonic() - started
    print(f"{args.trials} trials ({dict(signals)}) in {took:.1f} s: {len(failed)} failed"
          + (f" (seeds {[t.seed for t in failed]})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
