"""Crash safety with real processes: a run SIGKILLed in the middle of a task resumes to the
same results as an uninterrupted run, with every task recorded complete run exactly once and
the task in flight run again; Ctrl-C (SIGINT) records the run CANCELLED at once and resume
continues it."""

from __future__ import annotations

import importlib.util
import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from flowdsl import RunStatus
from flowdsl.store import open_store

N_TASKS = 15

MAIN = textwrap.dedent('''
    def canon(value):
        """A text form that keeps types (a tuple is not a list) and ignores set order."""
        if isinstance(value, (set, frozenset)):
            return f"{type(value).__name__}{sorted(map(canon, value))}"
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}{[canon(v) for v in value]}"
        if isinstance(value, dict):
            return f"{type(value).__name__}{sorted((canon(k), canon(v)) for k, v in value.items())}"
        return f"{type(value).__name__}:{value!r}"


    def main():
        import sys
        store, run_id, log, mode = sys.argv[1:5]
        if mode == "resume":
            result = flow.run(store=store, resume=run_id)
        else:
            result = flow.run({"log": log}, store=store, run_id=run_id)
        print(json.dumps({
            "status": result.status.value,
            "results": canon(dict(result.results)),
            "shared": canon(dict(result.context.shared_state)),
        }), flush=True)
        sys.exit(0 if result.status.value == "succeeded" else 1)


    if __name__ == "__main__":
        main()
''')


def random_flow_source(seed: int, n: int = N_TASKS) -> str:
    """A flow file: a random DAG of ``n`` tasks; each logs ``start``/``done`` lines with its
    pid, sleeps 20-50 ms, combines its parents' results and writes one shared-state key."""
    rng = random.Random(seed)
    out = [
        "import json, os, time",
        "from flowdsl import Flow",
        "",
        f"flow = Flow('crash{seed}')",
        "",
        "def note(log, what, task_id):",
        "    with open(log, 'a') as handle:",
        "        handle.write(f'{what} {task_id} {os.getpid()}\\n')",
        "        handle.flush()",
        "",
    ]
    for i in range(n):
        tid = f"t{i:02d}"
        parents = sorted(rng.sample(range(i), k=min(i, rng.randint(0, 3))))
        names = [f"t{p:02d}" for p in parents]
        params = ", ".join(names + ["log", "context"])
        total = " + ".join([str(rng.randint(1, 99))] + [f"{p}['sum']" for p in names])
        out += [
            f"@flow.task(priority={rng.randint(2, 4)})",
            f"def {tid}({params}):",
            f"    note(log, 'start', {tid!r})",
            f"    time.sleep({rng.uniform(0.02, 0.05):.3f})",
            f"    value = {{'id': {tid!r}, 'sum': {total}, 'parents': {tuple(names)!r},"
            f" 'tags': {set(rng.sample(range(100), 2))!r}}}",
            f"    context.shared_state['seen_{tid}'] = (value['sum'], {i})",
            f"    note(log, 'done', {tid!r})",
            "    return value",
            "",
        ]
    return "\n".join(out) + MAIN


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_log(path: Path) -> list[tuple[str, str, int]]:
    lines = []
    for line in path.read_text().splitlines():
        what, task_id, pid = line.split()
        lines.append((what, task_id, int(pid)))
    return lines


def integrity(path: Path | str) -> list:
    if str(path).startswith(("postgresql://", "postgres://")):
        return [("ok",)]  # a server's integrity is the server's own (WAL, constraints)
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def spawn(script: Path, store: Path | str, run_id: str, log: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(store), run_id, str(log), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 2024, 777])
def test_sigkill_mid_task_then_resume_completes_exactly_once(tmp_path, seed, store_url):
    rng = random.Random(seed * 7919)
    script = tmp_path / f"crashflow{seed}.py"
    script.write_text(random_flow_source(seed))
    store, log = store_url, tmp_path / "log.txt"
    log.touch()
    k = rng.randint(1, N_TASKS - 3)  # completion lines to wait for before the kill

    proc = spawn(script, store, "crash-run", log, "start")
    try:
        deadline = time.monotonic() + 30
        while True:  # after k completions, once the next task has started: in mid-task
            lines = read_log(log)
            if sum(1 for w, _, _ in lines if w == "done") >= k and \
                    sum(1 for w, _, _ in lines if w == "start") > k:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.012))  # every task sleeps at least 20 ms
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first_pid = proc.pid

    assert integrity(store) == [("ok",)]
    at_kill = open_store(store).get_run("crash-run")
    assert at_kill["status"] == "running"
    recorded = {t for t, rec in at_kill["tasks"].items() if rec["status"] == "completed"}
    lines = read_log(log)
    started_first = {t for w, t, pid in lines if w == "start" and pid == first_pid}
    done_first = {t for w, t, pid in lines if w == "done" and pid == first_pid}
    assert len(recorded) >= k
    assert recorded <= done_first  # the store never records a completion that did not happen
    in_flight = started_first - recorded
    assert in_flight, "the kill did not land in the middle of a task"

    resume = spawn(script, store, "crash-run", log, "resume")
    out, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, err
    resumed = json.loads(out)
    assert resumed["status"] == "succeeded"

    lines = read_log(log)
    done = Counter(t for w, t, _ in lines if w == "done")
    starts = Counter(t for w, t, _ in lines if w == "start")
    for task_id in recorded:  # recorded complete before the kill: ran exactly once in total
        assert done[task_id] == 1, task_id
        assert starts[task_id] == 1, task_id
    for task_id in in_flight:  # in flight at the kill: ran again, to completion
        assert starts[task_id] == 2, task_id
        assert any(w == "done" and t == task_id and pid == resume.pid for w, t, pid in lines)
    assert set(done) == {f"t{i:02d}" for i in range(N_TASKS)}  # nothing lost
    assert all(done[t] == 1 for t in done if t not in in_flight)

    # the same results and shared state as an uninterrupted run
    module = load_module(script, f"crashflow{seed}_clean")
    clean = module.flow.run({"log": str(tmp_path / "clean-log.txt")})
    assert clean.status is RunStatus.SUCCEEDED
    assert resumed["results"] == module.canon(dict(clean.results))
    assert resumed["shared"] == module.canon(dict(clean.context.shared_state))
    assert "tuple" in resumed["results"] and "set" in resumed["results"]

    assert integrity(store) == [("ok",)]
    record = open_store(store).get_run("crash-run")
    assert record["status"] == "succeeded"
    assert [s["pid"] for s in record["sessions"]] == [first_pid, resume.pid]
    assert {rec["status"] for rec in record["tasks"].values()} == {"completed"}


INTERRUPTED_FLOW = textwrap.dedent('''
    import json, os, signal, sys, time
    from pathlib import Path
    from flowdsl import Flow, Priority

    flow = Flow("interruptible")

    def note(log, line):
        with open(log, "a") as handle:
            handle.write(f"{line} {os.getpid()}\\n")

    @flow.task(priority=Priority.HIGH)
    def fetch(log):
        note(log, "fetch")
        return {"rows": (1, 2, 3)}

    @flow.task
    def crunch(fetch, log, release):
        note(log, "crunch-start")
        while not Path(release).exists():
            time.sleep(0.01)
        note(log, "crunch-done")
        return sum(fetch["rows"])

    @flow.task
    def store_it(crunch, log):
        note(log, "store_it")
        return crunch * 2

    @flow.task(priority=Priority.LOW)
    def tidy_up(log):
        note(log, "tidy_up")
        return "tidy"

    if __name__ == "__main__":
        signal.signal(signal.SIGINT, signal.default_int_handler)
        store, run_id, log, release, mode = sys.argv[1:6]
        try:
            if mode == "resume":
                result = flow.run(store=store, resume=run_id)
            else:
                result = flow.run({"log": log, "release": release}, store=store, run_id=run_id)
        except KeyboardInterrupt as exc:
            partial = exc.flowdsl_result
            print(json.dumps({"status": partial.status.value,
                              "tasks": {t: r.status.value for t, r in partial.tasks.items()}}),
                  flush=True)
            raise
        print(json.dumps({"status": result.status.value, "results": result.results}), flush=True)
        sys.exit(0 if result.status.value == "succeeded" else 1)
''')


@pytest.mark.slow
def test_sigint_cancels_the_run_within_a_second_and_resume_continues_it(tmp_path, store_url):
    script = tmp_path / "interruptible.py"
    script.write_text(INTERRUPTED_FLOW)
    store, log, release = store_url, tmp_path / "log.txt", tmp_path / "release"
    log.touch()
    args = [sys.executable, str(script), str(store), "ctrl-c", str(log), str(release)]
    proc = subprocess.Popen(args + ["start"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while "crunch-start" not in log.read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        reader = open_store(store)
        assert reader.get_run("ctrl-c")["status"] == "running"

        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        while True:
            record = reader.get_run("ctrl-c")
            if record["status"] == "cancelled":
                break
            assert time.monotonic() - sent < 1.0, f"not recorded cancelled: {record['status']}"
            time.sleep(0.01)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    partial = json.loads(out)
    assert partial["status"] == "cancelled"
    assert partial["tasks"] == {"fetch": "completed", "crunch": "cancelled",
                                "store_it": "cancelled", "tidy_up": "cancelled"}

    record = open_store(store).get_run("ctrl-c")
    assert record["status"] == "cancelled"
    tasks = record["tasks"]
    assert tasks["fetch"]["status"] == "completed"
    assert tasks["crunch"]["status"] == "cancelled"  # the task in flight
    assert tasks["store_it"]["status"] == "cancelled"
    assert tasks["tidy_up"]["status"] == "cancelled"
    assert record["sessions"][0]["status"] == "cancelled"
    assert record["sessions"][0]["ended"] is not None
    assert integrity(store) == [("ok",)]

    release.touch()
    resume = subprocess.run(args + ["resume"], capture_output=True, text=True, timeout=60)
    assert resume.returncode == 0, resume.stderr
    resumed = json.loads(resume.stdout)
    assert resumed["status"] == "succeeded"
    assert resumed["results"] == {"fetch": {"rows": [1, 2, 3]}, "crunch": 6, "store_it": 12,
                                  "tidy_up": "tidy"}
    names = [line.split()[0] for line in log.read_text().splitlines()]
    assert names.count("fetch") == 1  # completed before Ctrl-C: not run again
    assert names.count("crunch-start") == 2  # cancelled in flight: ran again
    assert names.count("crunch-done") == 1
    assert names.count("store_it") == 1 and names.count("tidy_up") == 1

    record = open_store(store).get_run("ctrl-c")
    assert record["status"] == "succeeded"
    assert len(record["sessions"]) == 2
    assert integrity(store) == [("ok",)]
