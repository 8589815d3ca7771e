"""Caching across runs (DESIGN "Values, resources and caching", rev. 3), as a user relies on
it: a cached task's result is reused by a later run of the same flow in the same store when
its code and inputs match (no handler call, writes replayed, reason "cached from run <id>"),
on every executor and on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowdsl import Cache, DefinitionError, Flow, RunStatus, TaskContext, TaskStatus
from flowdsl.store import open_store

CACHED = "cached from run "


class Calls:
    """Which handlers ran, in a file: handlers on Dask workers (other processes) write it too."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __call__(self, task: str) -> None:
        with open(self.path, "a") as log:
            log.write(task + "\n")

    def take(self) -> list[str]:
        path = Path(self.path)
        ran = path.read_text().split() if path.exists() else []
        path.write_text("")
        return sorted(ran)


@pytest.fixture
def calls(tmp_path: Path) -> Calls:
    return Calls(tmp_path / "calls.txt")


def pipeline(calls: Calls, name: str = "cached", version: int = 1) -> Flow:
    """load (cached, produces rows) -> total (cached) -> report (not cached)."""
    flow = Flow(name)
    policy = True

    @flow.task(cache=policy, produces=["rows"])
    def load(source, scale=2):
        calls("load")
        return {"rows": [scale * n for n in range(len(source))], "source": source}

    if version == 1:
        @flow.task(cache=policy)
        def total(rows):
            calls("total")
            return sum(rows)
    else:
        @flow.task(cache=policy)
        def total(rows):
            calls("total")
            return sum(rows) + 1

    @flow.task
    def report(total, load):
        calls("report")
        return f"{load['source']}: {total}"

    return flow


def test_a_second_run_reuses_cached_results(run_flow, store_url, calls):
    first = run_flow(pipeline(calls), {"source": "abc"}, store=store_url)
    assert first.summary["cached_tasks"] == 0
    assert calls.take() == ["load", "report", "total"]

    second = run_flow(pipeline(calls), {"source": "abc"}, store=store_url)
    assert calls.take() == ["report"]  # the cached handlers were not called
    assert second.status is RunStatus.SUCCEEDED
    assert second.results == first.results
    assert second.summary["cached_tasks"] == 2
    assert second.summary["successful_tasks"] == 3
    for task_id in ("load", "total"):
        task = second.tasks[task_id]
        assert task.status is TaskStatus.COMPLETED
        assert task.reason == CACHED + first.run_id
        assert task.attempts == 0
    assert second.tasks["report"].reason is None
    # the produced key was replayed: in the shared state and in load's delta
    assert dict(second.context.shared_state) == {"rows": [0, 2, 4]}
    assert second.context.delta("load") == {"rows": [0, 2, 4]}
    entries = {e["task_id"]: e for e in second.context.execution_trace
               if e["action"] == "task_completed"}
    assert entries["load"]["details"] == {"cached_from": first.run_id}
    assert [e["task_id"] for e in second.context.previous_results] == ["load", "total", "report"]
    # the store records them as completed from the cache
    stored = open_store(store_url).get_run(second.run_id)["tasks"]
    assert stored["load"]["status"] == "completed"
    assert stored["load"]["reason"] == CACHED + first.run_id
    assert stored["total"]["result"] == 6


def test_other_inputs_defaults_or_code_miss_the_cache(store_url, calls):
    pipeline(calls).run({"source": "abc"}, store=store_url)
    calls.take()
    pipeline(calls).run({"source": "abcd"}, store=store_url)  # another input
    assert calls.take() == ["load", "report", "total"]
    pipeline(calls).run({"source": "abcd", "scale": 3}, store=store_url)  # a default's value
    assert calls.take() == ["load", "report", "total"]
    again = pipeline(calls).run({"source": "abc"}, store=store_url)  # the first entry still fits
    assert calls.take() == ["report"]
    assert again.summary["cached_tasks"] == 2

    result = pipeline(calls, version=2).run({"source": "abc"}, store=store_url)  # total's code
    assert calls.take() == ["report", "total"]
    assert result.tasks["load"].reason.startswith(CACHED)
    assert result.results["total"] == 7


def test_an_entry_is_reused_by_the_same_flow_name_only(store_url, calls):
    pipeline(calls).run({"source": "abc"}, store=store_url)
    calls.take()
    other = pipeline(calls, name="another").run({"source": "abc"}, store=store_url)
    assert calls.take() == ["load", "report", "total"]
    assert other.summary["cached_tasks"] == 0


def test_ttl_none_forever_zero_never_and_expired_entries_run_again(store_url, calls):
    def flow(ttl):
        f = Flow("ttl")

        @f.task(cache=Cache(ttl=ttl))
        def slow(x):
            calls("slow")
            return x * 2

        return f

    flow(None).run({"x": 1}, store=store_url)
    assert flow(None).run({"x": 1}, store=store_url).summary["cached_tasks"] == 1
    assert flow(0).run({"x": 1}, store=store_url).summary["cached_tasks"] == 0
    assert flow(-5).run({"x": 1}, store=store_url).summary["cached_tasks"] == 0
    assert flow(3600).run({"x": 1}, store=store_url).summary["cached_tasks"] == 1
    store = open_store(store_url)
    with store.write() as db:  # the entry is two hours old now
        db.execute("UPDATE cache_entries SET created = created - 7200")
    store.close()
    calls.take()
    assert flow(3600).run({"x": 1}, store=store_url).summary["cached_tasks"] == 0
    assert calls.take() == ["slow"]
    # that run wrote a fresh entry
    assert flow(3600).run({"x": 1}, store=store_url).summary["cached_tasks"] == 1


def test_a_key_function_replaces_the_input_hash(store_url, calls):
    seen = []

    def by_day(path, day):
        seen.append((path, day))
        return day

    def build():
        flow = Flow("keyed")

        @flow.task(cache=Cache(key=by_day))
        def fetch(path, day="monday"):
            calls("fetch")
            return f"{path}@{day}"

        return flow

    first = build().run({"path": "/a"}, store=store_url)
    second = build().run({"path": "/b"}, store=store_url)  # same key: reused
    assert second.tasks["fetch"].reason == CACHED + first.run_id
    assert second.results["fetch"] == "/a@monday"
    assert seen == [("/a", "monday"), ("/b", "monday")]
    build().run({"path": "/a", "day": "tuesday"}, store=store_url)
    assert calls.take() == ["fetch", "fetch"]


def test_a_key_function_that_fails_runs_the_task_uncached(tmp_path, calls):
    flow = Flow("badkey")

    @flow.task(cache=Cache(key=lambda x: 1 / 0))
    def task(x):
        calls("task")
        return x

    result = flow.run({"x": 1}, store=tmp_path / "runs.db")
    skipped = [e for e in result.context.execution_trace if e["action"] == "cache_skipped"]
    assert skipped[0]["details"]["parameter"] is None
    assert "ZeroDivisionError" in skipped[0]["details"]["error"]
    assert flow.run({"x": 1}, store=tmp_path / "runs.db").summary["cached_tasks"] == 0


def test_flow_cache_applies_to_every_task_and_a_task_own_cache_wins(tmp_path, calls):
    def build():
        flow = Flow("everything", cache=True)

        @flow.task
        def one():
            calls("one")
            return 1

        @flow.task(cache=False)
        def two(one):
            calls("two")
            return one + 1

        @flow.task(cache=Cache(ttl=0))
        def three(two):
            calls("three")
            return two + 1

        return flow

    store = tmp_path / "runs.db"
    build().run(store=store)
    calls.take()
    second = build().run(store=store)
    assert calls.take() == ["three", "two"]
    assert second.summary["cached_tasks"] == 1
    assert second.tasks["one"].reason.startswith(CACHED)


def test_cache_false_neither_reads_nor_writes(store_url, calls):
    result = pipeline(calls).run({"source": "abc"}, store=store_url, cache=False)
    assert result.summary["cached_tasks"] == 0
    calls.take()
    pipeline(calls).run({"source": "abc"}, store=store_url)  # nothing was written: a miss
    assert calls.take() == ["load", "report", "total"]
    uncached = pipeline(calls).run({"source": "abc"}, store=store_url, cache=False)
    assert calls.take() == ["load", "report", "total"]  # an entry exists, not read
    assert uncached.summary["cached_tasks"] == 0


def test_no_store_no_cache_and_no_cached_tasks_key(calls):
    flow = pipeline(calls)
    flow.run({"source": "abc"})
    result = flow.run({"source": "abc"})
    assert calls.take() == ["load", "load", "report", "report", "total", "total"]
    assert "cached_tasks" not in result.summary


def test_a_task_taking_the_context_is_never_cached(tmp_path, calls):
    def build():
        flow = Flow("ctx", cache=True)

        @flow.task
        def seeded(context: TaskContext):
            calls("seeded")
            context.shared_state["seen"] = True
            return 1

        @flow.task
        def legacy(task_input):
            calls("legacy")
            return task_input["seeded_result"] if "seeded_result" in task_input else 2

        return flow

    store = tmp_path / "runs.db"
    build().run(store=store)
    second = build().run(store=store)
    assert calls.take() == ["legacy", "legacy", "seeded", "seeded"]
    assert second.summary["cached_tasks"] == 0
    skipped = {e["task_id"]: e["details"] for e in second.context.execution_trace
               if e["action"] == "cache_skipped"}
    assert skipped["seeded"]["parameter"] == "context"
    assert skipped["legacy"]["parameter"] == "task_input"


class Opaque:
    def __init__(self, n: int) -> None:
        self.n = n


def test_an_input_without_an_encoding_runs_uncached_naming_the_parameter(tmp_path, calls):
    def build():
        flow = Flow("opaque")

        @flow.task(serializer="pickle")
        def make():
            return Opaque(3)

        @flow.task(cache=True, serializer="pickle")
        def use(make, label="n"):
            calls("use")
            return {label: make.n}

        return flow

    store = tmp_path / "runs.db"
    build().run(store=store)
    second = build().run(store=store)
    assert calls.take() == ["use", "use"]
    details = [e["details"] for e in second.context.execution_trace
               if e["action"] == "cache_skipped"]
    assert details[0]["parameter"] == "make"
    assert "Opaque" in details[0]["error"]
    assert second.results["use"] == {"n": 3}


def test_a_pickled_task_is_keyed_by_the_json_encoding_of_its_inputs(tmp_path, calls):
    def build():
        flow = Flow("pickled")

        @flow.task(cache=True, serializer="pickle")
        def wrap(x):
            calls("wrap")
            return Opaque(x)

        return flow

    store = tmp_path / "runs.db"
    build().run({"x": 4}, store=store)
    second = build().run({"x": 4}, store=store)
    assert calls.take() == ["wrap"]
    assert isinstance(second.results["wrap"], Opaque) and second.results["wrap"].n == 4


def test_a_failed_task_leaves_no_entry(tmp_path, calls):
    attempts = tmp_path / "fail"
    attempts.write_text("fail")

    def build():
        flow = Flow("flaky")

        @flow.task(cache=True)
        def flaky(x):
            calls("flaky")
            if attempts.read_text() == "fail":
                raise ConnectionError("down")
            return x

        return flow

    store = tmp_path / "runs.db"
    assert build().run({"x": 1}, store=store, raise_on_failure=False).status is RunStatus.FAILED
    attempts.write_text("ok")
    assert build().run({"x": 1}, store=store).summary["cached_tasks"] == 0
    assert build().run({"x": 1}, store=store).summary["cached_tasks"] == 1
    assert calls.take() == ["flaky", "flaky"]


def test_clear_cache_empties_all_or_one_task(store_url, calls):
    pipeline(calls).run({"source": "abc"}, store=store_url)
    store = open_store(store_url)
    try:
        assert store.clear_cache("total") == 1
        calls.take()
        pipeline(calls).run({"source": "abc"}, store=store_url)
        assert calls.take() == ["report", "total"]
        assert store.clear_cache() == 2
        assert store.clear_cache() == 0
    finally:
        store.close()
    pipeline(calls).run({"source": "abc"}, store=store_url)
    assert calls.take() == ["load", "report", "total"]


def test_resuming_runs_cached_tasks_from_the_cache_too(tmp_path, calls):
    gate = tmp_path / "gate"

    def build():
        flow = Flow("resumed")

        @flow.task(cache=True)
        def prepare(x):
            calls("prepare")
            return x + 1

        @flow.task
        def publish(prepare):
            calls("publish")
            if not gate.exists():
                raise ConnectionError("down")
            return prepare

        return flow

    store = tmp_path / "runs.db"
    first = build().run({"x": 1}, store=store, raise_on_failure=False)
    other = build().run({"x": 1}, store=store, raise_on_failure=False)  # prepare from the cache
    assert other.tasks["prepare"].reason == CACHED + first.run_id
    gate.touch()
    resumed = build().run(store=store, resume=other.run_id)
    assert resumed.tasks["prepare"].reason == "restored from the run store"
    assert calls.take() == ["prepare", "publish", "publish", "publish"]


@pytest.mark.parametrize("bad", ["yes", 1, Cache(ttl="soon"), Cache(key="day")])
def test_a_bad_cache_keyword_is_a_definition_error_naming_the_task(bad):
    flow = Flow("bad")
    with pytest.raises(DefinitionError, match="(?i)task 'oops'.*cache"):
        flow.task(lambda: 1, id="oops", cache=bad)
    with pytest.raises(DefinitionError, match="flow 'f'"):
        Flow("f", cache=bad)


CLI_FLOW = '''
from pathlib import Path
from flowdsl import Flow

flow = Flow("cli_cache", cache=True)

@flow.task
def load(n):
    with open(Path(__file__).parent / "calls.txt", "a") as log:
        log.write("load\\n")
    return list(range(n))

@flow.task(cache=False)
def report(load):
    return sum(load)
'''


@pytest.mark.slow
def test_cli_run_twice_shows_the_cache_and_no_cache_skips_it(tmp_path):
    from tests.test_cli import flowdsl

    (tmp_path / "pipe.py").write_text(CLI_FLOW)
    first = flowdsl(tmp_path, "run", "pipe.py", "--set", "n=4", "--run-id", "one")
    assert first.returncode == 0, first.stderr
    second = flowdsl(tmp_path, "run", "pipe.py", "--set", "n=4", "--run-id", "two")
    assert second.returncode == 0, second.stderr
    rows = {line.split()[0]: line for line in second.stdout.splitlines() if line.strip()}
    assert "cached from run one" in rows["load"]
    assert "1 from the cache" in second.stdout
    shown = flowdsl(tmp_path, "show", "two")
    assert shown.returncode == 0, shown.stderr
    assert "cached from run one" in shown.stdout
    third = flowdsl(tmp_path, "run", "pipe.py", "--set", "n=4", "--no-cache", "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["summary"]["cached_tasks"] == 0
    assert (tmp_path / "calls.txt").read_text().split() == ["load", "load"]


def test_an_included_flow_keeps_its_cache_policy_and_inherits_the_parent_s(tmp_path, calls):
    def build():
        cached_sub = Flow("sub", cache=True)
        cached_sub.task(lambda x: calls("own") or x + 1, id="own")
        plain_sub = Flow("plain")
        plain_sub.task(lambda x: calls("inherits") or x + 2, id="inherits")
        opted_out = Flow("out", cache=False)
        opted_out.task(lambda x: calls("never") or x + 3, id="never")
        parent = Flow("parent", cache=True)
        parent.include(cached_sub, prefix="a")
        parent.include(plain_sub, prefix="b")
        parent.include(opted_out, prefix="c")
        return parent

    store = tmp_path / "runs.db"
    build().run({"x": 1}, store=store)
    calls.take()
    second = build().run({"x": 1}, store=store)
    assert calls.take() == ["never"]
    assert second.tasks["a.own"].reason.startswith(CACHED)
    assert second.tasks["b.inherits"].reason.startswith(CACHED)


def test_hooks_fire_for_cached_tasks(tmp_path):
    seen = []

    def build():
        flow = Flow("hooked", on_success=lambda event: seen.append(
            (event.task_id, event.reason, event.result)))
        flow.task(lambda x: x * 10, id="scaled", cache=True)
        return flow

    first = build().run({"x": 2}, store=tmp_path / "runs.db")
    build().run({"x": 2}, store=tmp_path / "runs.db")
    assert seen == [("scaled", None, 20), ("scaled", CACHED + first.run_id, 20)]


class Connection:
    """A live object: no encoding, never stored."""

    def __init__(self, rows: int) -> None:
        self.rows = rows


def test_resources_are_left_out_of_the_key(tmp_path, calls):
    def build():
        flow = Flow("with_db")

        @flow.task(cache=True)
        def count(table, db):
            calls("count")
            return f"{table}: {db.rows}"

        return flow

    store = tmp_path / "runs.db"
    first = build().run({"table": "t"}, store=store, resources={"db": Connection(3)})
    second = build().run({"table": "t"}, store=store, resources={"db": Connection(4)})
    assert calls.take() == ["count"]
    assert second.tasks["count"].reason == CACHED + first.run_id
    assert not [e for e in second.context.execution_trace if e["action"] == "cache_skipped"]


def test_elements_of_a_mapped_task_are_cached_one_by_one(run_flow, store_url, calls):
    def build():
        flow = Flow("mapped_cache")

        @flow.task(map_over="item", cache=True, produces=["squares"])
        def square(item, offset=0):
            calls(f"square{item}")
            return {"squares": item * item + offset}

        @flow.task
        def total(squares):
            return sum(squares)

        return flow

    first = run_flow(build(), {"item": [1, 2, 3]}, store=store_url)
    assert first.results["total"] == 14
    assert calls.take() == ["square1", "square2", "square3"]
    # two elements seen before, one new: only the new one runs
    second = run_flow(build(), {"item": [3, 4, 1]}, store=store_url)
    assert calls.take() == ["square4"]
    assert second.results["square"] == [{"squares": 9}, {"squares": 16}, {"squares": 1}]
    assert second.results["total"] == 26
    assert dict(second.context.shared_state)["squares"] == [9, 16, 1]
    elements = second.tasks["square"].elements
    assert [e.reason for e in elements] == [CACHED + first.run_id, None,
                                            CACHED + first.run_id]
    assert [e.attempts for e in elements] == [0, 1, 0]
    assert second.tasks["square"].status is TaskStatus.COMPLETED
    # another value of a parameter that is not mapped: every element runs
    run_flow(build(), {"item": [1, 2], "offset": 1}, store=store_url)
    assert calls.take() == ["square1", "square2"]
    # cache=False: neither read nor written
    run_flow(build(), {"item": [5, 1]}, store=store_url, cache=False)
    assert calls.take() == ["square1", "square5"]
    run_flow(build(), {"item": [5]}, store=store_url)
    assert calls.take() == ["square5"]
