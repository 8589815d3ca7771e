"""TaskContext: its fields and the seed's methods, deltas and snapshots, records, importance,
pruning, context accuracy and user strategies."""

import pytest

import flowdsl
from flowdsl import (
    DELETED,
    ContextPreservationStrategy,
    ContextPrunedError,
    Flow,
    FlowError,
    IncrementalContextStrategy,
    Priority,
    RunStatus,
    TaskContext,
    TaskStatus,
)


class Boom(Exception):
    pass


def noop():
    return None


# -- fields and the seed's methods ------------------------------------------------------------

def test_context_fields_after_a_run(flow, run_flow):
    @flow.task
    def first():
        return 1

    initial = {"a": 1}
    result = run_flow(flow, initial, run_id="ctx-run")
    context = result.context

    assert isinstance(context, TaskContext)
    assert context.task_id == "ctx-run"  # the run id
    assert dict(context.data) == {"a": 1}
    assert isinstance(context.metadata, dict)
    assert [e["task_id"] for e in context.previous_results] == ["first"]
    assert dict(context.shared_state) == {}
    assert [e["action"] for e in context.execution_trace] == ["task_completed"]
    assert set(context.records) == {"first"}


def test_seed_methods_inside_handlers(flow, run_flow):
    @flow.task
    def first():
        return {"rows": 3}

    @flow.task
    def second(first, context):
        context.update_shared_state("count", first["rows"])
        context.log_execution("second", "custom_step", {"note": "hello"})
        return (context.get_result("first"), context.get_result("missing", "fallback"),
                context.get_result("missing"))

    result = run_flow(flow)
    context = result.context

    assert result.results["second"] == ({"rows": 3}, "fallback", None)
    assert context.shared_state == {"count": 3}
    assert context.delta("second") == {"count": 3}
    custom = [e for e in context.execution_trace if e["action"] == "custom_step"]
    assert len(custom) == 1
    entry = custom[0]
    assert entry["task_id"] == "second" and entry["details"] == {"note": "hello"}
    assert isinstance(entry["timestamp"], float)


def test_add_result_and_get_result_on_the_context(flow, run_flow):
    flow.task(id="only")(noop)
    context = run_flow(flow).context

    context.add_result("extra", 5, {"source": "manual"})

    assert context.get_result("extra") == 5
    assert context.get_result("only") is None  # its result is None, not the default
    assert context.get_result("nope", "default") == "default"
    entry = context.previous_results[-1]
    assert entry["task_id"] == "extra" and entry["result"] == 5
    assert entry["metadata"] == {"source": "manual"}
    assert isinstance(entry["timestamp"], float)


@pytest.mark.in_process
def test_data_is_a_read_only_view_of_the_initial_mapping(flow, run_flow):
    payload = object()
    initial = {"payload": payload, "n": 1}
    seen = {}

    @flow.task
    def look(context):
        seen["same"] = context.data["payload"] is payload
        try:
            context.data["n"] = 2
        except TypeError:
            seen["refused"] = True
        try:
            del context.data["n"]
        except TypeError:
            seen["refused_delete"] = True
        context.shared_state["written"] = 1
        return None

    result = run_flow(flow, initial)

    assert seen == {"same": True, "refused": True, "refused_delete": True}
    data = result.context.data
    assert data["payload"] is payload
    assert "written" not in data  # shared-state writes do not touch the input
    with pytest.raises(TypeError):
        data["new"] = 1  # type: ignore[index]
    initial["added_later"] = True
    assert data["added_later"] is True  # a view of the caller's mapping, not a copy


def test_a_one_key_task_reads_the_shared_state_then_the_data_then_its_default(flow, run_flow):
    @flow.task
    def writer(context):
        context.shared_state["shadowed"] = "from shared state"

    @flow.task(depends_on=["writer"])
    def reads_shadowed(shadowed):
        return shadowed

    @flow.task(depends_on=["writer"])
    def reads_given(given):
        return given

    @flow.task
    def reads_default(absent="the default"):
        return absent

    result = run_flow(flow, {"shadowed": "from data", "given": "from data"})

    assert result.results["reads_shadowed"] == "from shared state"
    assert result.results["reads_given"] == "from data"
    assert result.results["reads_default"] == "the default"
    assert result.context.records["reads_shadowed"].reads == {"shadowed": "from shared state"}
    with pytest.raises(flowdsl.MissingInputError, match="given"):
        run_flow(flow, {"shadowed": "from data"})


# -- previous_results and the trace --------------------------------------------------------

def test_previous_results_one_entry_per_completed_task_in_completion_order(flow, run_flow):
    @flow.task
    def a():
        return "A"

    @flow.task
    def b(a):
        return a + "B"

    @flow.task
    def broken():
        raise Boom("x")

    @flow.task
    def skipped(broken):
        return "never"

    @flow.task(priority=Priority.LOW)
    def c(b, context):
        seen = [e["task_id"] for e in context.previous_results]
        return b + "C", seen

    result = run_flow(flow, raise_on_failure=False)
    entries = result.context.previous_results
    text, seen_by_c = result.results["c"]
    assert text == "ABC"
    assert {"a", "b"} <= set(seen_by_c) and "c" not in seen_by_c  # appended on completion

    completed = [t for t in result.tasks.values() if t.status is TaskStatus.COMPLETED]
    by_end = [t.id for t in sorted(completed, key=lambda t: t.ended_at)]
    assert [e["task_id"] for e in entries] == by_end
    assert sorted(by_end) == ["a", "b", "c"]
    for entry in entries:
        assert set(entry) >= {"task_id", "result", "metadata", "timestamp"}
        assert entry["result"] == result.results[entry["task_id"]]
        assert isinstance(entry["timestamp"], float)
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps)


@pytest.mark.one_at_a_time
def test_trace_has_one_outcome_entry_per_task(flow, run_flow):
    @flow.task(priority=Priority.HIGH)
    def broken():
        raise Boom("broken")

    @flow.task(priority=Priority.HIGH)
    def done():
        return 1

    @flow.task
    def skipped(broken):
        return "never"

    @flow.task(priority=Priority.CRITICAL, depends_on=["done"])
    def gate():
        raise Boom("gate")

    @flow.task(priority=Priority.LOW)
    def cancelled():
        return "never"

    result = run_flow(flow, raise_on_failure=False)
    trace = result.context.execution_trace

    for entry in trace:
        assert set(entry) >= {"task_id", "action", "details", "timestamp"}
        assert isinstance(entry["timestamp"], float)
    outcomes = {e["task_id"]: e["action"] for e in trace}
    assert len(trace) == 5
    assert outcomes == {
        "done": "task_completed",
        "broken": "task_failed",
        "gate": "task_failed",
        "skipped": "task_skipped",
        "cancelled": "task_cancelled",
    }
    failed = next(e for e in trace if e["task_id"] == "broken")
    assert "broken" in str(failed["details"])  # the error is in the details


# -- deltas: every mutating method of the shared state is journalled -------------------------

def set_items(context):
    state = context.shared_state
    for key, value in zip("abcde", range(1, 6)):
        state[key] = value


def update_items(set_items, context):
    context.shared_state.update({"a": 10}, f=6)


def ior_items(update_items, context):
    state = context.shared_state
    state |= {"g": 7}


def setdefault_items(ior_items, context):
    state = context.shared_state
    return (state.setdefault("h", 8), state.setdefault("a", 99))


def pop_items(setdefault_items, context):
    state = context.shared_state
    return (state.pop("b"), state.pop("absent", "fallback"))


def popitem_item(pop_items, context):
    return context.shared_state.popitem()


def del_item(popitem_item, context):
    del context.shared_state["c"]


def via_task_input(del_item, task_input):
    task_input["shared_state"]["z"] = 26
    task_input["context"].update_shared_state("y", 25)


def clear_items(via_task_input, context):
    snapshot = dict(context.shared_state)
    context.shared_state.clear()
    return snapshot


def test_every_shared_state_write_is_part_of_the_writers_delta(flow, run_flow):
    for handler in (set_items, update_items, ior_items, setdefault_items, pop_items,
                    popitem_item, del_item, via_task_input, clear_items):
        flow.task(handler)

    result = run_flow(flow)
    context = result.context
    assert result.status is RunStatus.SUCCEEDED, result.tasks

    assert context.delta("set_items") == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    assert context.delta("update_items") == {"a": 10, "f": 6}
    assert context.delta("ior_items") == {"g": 7}
    assert result.results["setdefault_items"] == (8, 10)
    assert context.delta("setdefault_items") == {"h": 8}
    assert result.results["pop_items"] == (2, "fallback")
    assert context.delta("pop_items") == {"b": DELETED}
    key, value = result.results["popitem_item"]
    assert context.delta("popitem_item") == {key: DELETED}
    assert context.delta("del_item") == {"c": DELETED}
    assert context.delta("via_task_input") == {"z": 26, "y": 25}
    before_clear = result.results["clear_items"]
    assert before_clear  # there was something to clear
    assert context.delta("clear_items") == {k: DELETED for k in before_clear}
    assert dict(context.shared_state) == {}
    for task_id in result.tasks:  # the delta is also on the record
        assert dict(context.records[task_id].delta) == context.delta(task_id)


def test_delta_holds_the_last_value_written_per_key(flow, run_flow):
    @flow.task
    def writes_twice(context):
        context.shared_state["k"] = 1
        context.shared_state["k"] = 2
        context.shared_state["gone"] = 1
        del context.shared_state["gone"]

    @flow.task(produces=["p"])
    def produces_it():
        return {"p": "produced", "not_declared": 1}

    result = run_flow(flow)

    assert result.context.delta("writes_twice") == {"k": 2, "gone": DELETED}
    assert result.context.delta("produces_it") == {"p": "produced"}
    assert result.context.shared_state == {"k": 2, "p": "produced"}


def test_deleted_is_public_and_distinct(flow):
    assert flowdsl.DELETED is DELETED
    assert DELETED is not None and DELETED != 0 and repr(DELETED) == "DELETED"


# -- snapshots -------------------------------------------------------------------------------

def snap_one(context):
    context.shared_state["k"] = 1
    context.shared_state["x"] = "x1"
    return dict(context.shared_state)


def snap_two(snap_one, context):
    seen = dict(context.shared_state)
    context.shared_state["k"] = 2
    del context.shared_state["x"]
    return seen


def snap_three(snap_two, context):
    seen = dict(context.shared_state)
    context.shared_state.update(k=3, y="y3")
    context.shared_state["x"] = "x3"
    return seen


def snap_four(snap_three, context):
    seen = dict(context.shared_state)
    context.shared_state.pop("y")
    return seen


def snap_five(snap_four, context):
    return dict(context.shared_state)


def test_snapshot_rebuilds_the_state_each_task_started_with(flow, run_flow):
    for handler in (snap_one, snap_two, snap_three, snap_four, snap_five):
        flow.task(handler)

    result = run_flow(flow, {"input": "not in the shared state"})
    context = result.context

    assert context.snapshot("snap_one") == {}
    assert context.snapshot("snap_two") == {"k": 1, "x": "x1"}
    assert context.snapshot("snap_three") == {"k": 2}
    assert context.snapshot("snap_four") == {"k": 3, "y": "y3", "x": "x3"}
    assert context.snapshot("snap_five") == {"k": 3, "x": "x3"}
    for task_id in ("snap_two", "snap_three", "snap_four", "snap_five"):
        assert context.snapshot(task_id) == result.results[task_id]  # what it saw at start
    assert dict(context.shared_state) == {"k": 3, "x": "x3"}  # snapshots change nothing


def test_snapshot_of_independent_tasks_follows_run_order(flow, run_flow):
    @flow.task
    def first(context):
        seen = dict(context.shared_state)
        context.shared_state["first"] = 1
        return seen

    @flow.task
    def second(context):
        seen = dict(context.shared_state)
        context.shared_state["second"] = 2
        return seen

    result = run_flow(flow)

    for task_id in ("first", "second"):
        assert result.context.snapshot(task_id) == result.results[task_id]


# -- records -------------------------------------------------------------------------------

def test_records_hold_reads_delta_duration_status_importance(flow, run_flow):
    @flow.task(produces=["rows"])
    def load(source):
        return {"rows": [source]}

    @flow.task(requires=["rows"], depends_on=["load"])
    def count(threshold=2):
        return "counted"

    @flow.task(priority=Priority.HIGH)
    def broken():
        raise Boom("x")

    @flow.task
    def skipped(broken):
        return "never"

    result = run_flow(flow, {"source": "file.csv"}, raise_on_failure=False)
    records = result.context.records

    assert set(records) == {"load", "count", "broken"}  # the tasks that ran
    load_record = records["load"]
    assert load_record.task_id == "load"
    assert dict(load_record.reads) == {"source": "file.csv"}
    assert dict(load_record.delta) == {"rows": ["file.csv"]}
    assert load_record.status is TaskStatus.COMPLETED
    assert load_record.duration == pytest.approx(result.tasks["load"].duration, abs=1e-3)
    assert isinstance(load_record.importance, int)
    assert dict(records["count"].reads) == {"rows": ["file.csv"], "threshold": 2}
    assert dict(records["count"].delta) == {}
    assert records["broken"].status is TaskStatus.FAILED
    with pytest.raises(TypeError):
        records["x"] = records["load"]  # read-only mapping


def _importance_flow(name):
    flow = Flow(name)
    flow.task(id="critical", priority=Priority.CRITICAL)(noop)
    flow.task(id="high", priority=Priority.HIGH)(noop)
    flow.task(id="normal")(noop)
    flow.task(id="low", priority=Priority.LOW)(noop)
    flow.task(id="lower", priority=9)(noop)
    flow.task(id="zero", priority=0)(noop)
    flow.task(id="requires", requires=["k"])(noop)

    @flow.task(id="produces", produces=["p"])
    def produces():
        return {"p": 1}

    flow.task(id="one_dep", depends_on=["low"])(noop)
    flow.task(id="two_deps", depends_on=["high", "normal"])(noop)

    @flow.task(id="writer", priority=Priority.LOW)
    def writer(context):
        context.shared_state["w"] = 1

    @flow.task(id="top", priority=Priority.CRITICAL, requires=["k"], depends_on=["high", "low"])
    def top(context):
        context.update_shared_state("t", 1)

    @flow.task(id="deleter")
    def deleter(writer, context):
        del context.shared_state["w"]

    return flow


IMPORTANCE = {
    "critical": 3, "high": 2, "normal": 1, "low": 0, "lower": 0, "zero": 3,
    "requires": 2, "produces": 3, "one_dep": 1, "two_deps": 2, "writer": 1, "top": 6,
    "deleter": 2,
}


def test_importance_values(run_flow):
    flow = _importance_flow("importance")

    result = run_flow(flow, {"k": "key"})

    assert result.status is RunStatus.SUCCEEDED
    importance = {task_id: record.importance for task_id, record in result.context.records.items()}
    assert importance == IMPORTANCE


# -- pruning ---------------------------------------------------------------------------------

def test_pruning_evicts_lowest_importance_first_oldest_first(flow, run_flow):
    flow.task(id="p_low", priority=Priority.LOW)(noop)  # 0
    flow.task(id="p_normal_1", depends_on=["p_low"])(noop)  # 1
    flow.task(id="p_high", priority=Priority.HIGH, depends_on=["p_normal_1"])(noop)  # 2
    flow.task(id="p_normal_2", depends_on=["p_high"])(noop)  # 1

    result = run_flow(flow, context_strategy=IncrementalContextStrategy(max_context_items=2))
    context = result.context

    assert set(context.records) == {"p_high", "p_normal_2"}
    # nothing but records is pruned
    assert set(result.results) == {"p_low", "p_normal_1", "p_high", "p_normal_2"}
    assert len(context.previous_results) == 4
    assert len([e for e in context.execution_trace if e["action"] == "task_completed"]) == 4
    with pytest.raises(ContextPrunedError) as info:
        context.snapshot("p_low")
    error = info.value
    assert isinstance(error, KeyError) and isinstance(error, FlowError)
    assert "p_low" in str(error)


def test_snapshot_needing_a_pruned_later_writer_raises_naming_the_task(flow, run_flow):
    flow.task(id="keeper", priority=Priority.HIGH)(noop)  # 2

    @flow.task(id="small_writer", priority=Priority.LOW, depends_on=["keeper"])
    def small_writer(context):  # 0 + 1 for writing
        context.shared_state["k"] = "written"

    flow.task(id="last", priority=Priority.HIGH, depends_on=["small_writer"])(noop)  # 2

    result = run_flow(flow, context_strategy=IncrementalContextStrategy(max_context_items=2))
    context = result.context

    assert set(context.records) == {"keeper", "last"}
    assert context.shared_state == {"k": "written"}  # the state itself is never pruned
    assert context.snapshot("last") == {"k": "written"}  # needs nothing pruned
    with pytest.raises(ContextPrunedError) as info:
        context.snapshot("keeper")  # would need to undo small_writer's write
    assert "keeper" in str(info.value)


class NoBound(ContextPreservationStrategy):
    """A user strategy that declares no max_context_items."""

    def preserve_context(self, context, task):
        pass

    def restore_context(self, context, task):
        pass


@pytest.mark.one_at_a_time  # "oldest" is completion order, which only N = 1 fixes
def test_records_are_bounded_by_1000_for_a_strategy_without_a_bound(flow, run_flow):
    for i in range(1003):
        flow.task(id=f"t{i}")(noop)

    result = run_flow(flow, context_strategy=NoBound())

    records = result.context.records
    assert len(records) == 1000
    assert not {"t0", "t1", "t2"} & set(records)  # the oldest of equal importance went first
    assert {"t3", "t1002"} <= set(records)
    assert len(result.results) == 1003 and len(result.context.previous_results) == 1003


def test_max_context_items_bounds_records_and_nothing_else(flow, run_flow):
    def write(context):
        context.shared_state[flowdsl.current_task().task_id] = True

    for i in range(20):
        flow.task(id=f"w{i}")(write)

    result = run_flow(flow, context_strategy=IncrementalContextStrategy(max_context_items=5))
    context = result.context

    # the five kept are the five that completed last (completion order: the trace's order,
    # which at N > 1 need not be declaration order)
    last_five = [entry["task_id"] for entry in context.execution_trace][-5:]
    assert set(context.records) == set(last_five)
    assert len(context.shared_state) == 20
    assert len(context.previous_results) == 20
    assert len(context.execution_trace) == 20
    assert len(result.results) == 20


# -- context accuracy ------------------------------------------------------------------------

def test_declared_input_gets_its_producers_value_despite_later_writes(flow, run_flow):
    @flow.task(produces=["k"])
    def producer():
        return {"k": "from producer"}

    @flow.task(depends_on=["producer"])
    def sideways(context):  # not an ancestor of reader: runs after producer, overwrites k
        context.shared_state["k"] = "overwritten"

    @flow.task(depends_on=["producer"])
    def reader(k):
        return k

    @flow.task(requires=["k"], depends_on=["producer"])
    def seed_reader(task_input):
        return task_input["k"]

    result = run_flow(flow)

    assert result.results["reader"] == "from producer"
    assert result.results["seed_reader"] == "from producer"
    assert dict(result.context.records["reader"].reads) == {"k": "from producer"}


def test_declared_input_gets_the_latest_ancestor_producer(flow, run_flow):
    """``second`` replaces the value ``first`` produced: the reader gets the latest, and
    ``second``'s record keeps what it replaced (its snapshot) beside its delta."""
    @flow.task(produces=["k"])
    def first():
        return {"k": 1}

    @flow.task(produces=["k"], depends_on=["first"])
    def second():
        return {"k": 2}

    @flow.task(depends_on=["second"])
    def reader(k):
        return k

    result = run_flow(flow)

    assert result.results["reader"] == 2
    context = result.context
    assert context.shared_state == {"k": 2}
    assert context.delta("first") == {"k": 1} and context.delta("second") == {"k": 2}
    assert context.snapshot("first") == {}
    assert context.snapshot("second") == {"k": 1}


def test_input_without_producer_comes_from_state_then_data_then_default(flow, run_flow):
    @flow.task
    def writer(context):
        context.shared_state["mode"] = "from state"

    @flow.task(depends_on=["writer"])
    def reader(mode, region, fallback="default value"):
        return (mode, region, fallback)

    result = run_flow(flow, {"mode": "from input", "region": "eu"})

    assert result.results["reader"] == ("from state", "eu", "default value")


# -- user strategies -------------------------------------------------------------------------

SEED_ATTRIBUTES = ("id", "name", "priority", "dependencies", "context_requirements",
                   "output_context_keys", "status", "result", "start_time", "end_time")


class Hooks(ContextPreservationStrategy):
    def __init__(self, log):
        self.log = log
        self.seen = {}

    def preserve_context(self, context, task):
        self.log.append(("preserve", task.id))
        self.seen[task.id] = {name: getattr(task, name) for name in SEED_ATTRIBUTES}
        return {"ignored": True}

    def restore_context(self, context, task):
        self.log.append(("restore", task.id, task.status, task.result))
        return False


@pytest.mark.one_at_a_time
def test_strategy_hooks_wrap_each_task_that_runs(flow, run_flow):
    log = []

    @flow.task(priority=Priority.HIGH)
    def broken():
        log.append(("attempt", "broken"))
        raise Boom("broken")

    @flow.task(retries=2, retry_wait=0)
    def flaky():
        log.append(("attempt", "flaky"))
        if flowdsl.current_task().attempt == 1:
            raise Boom("once")
        return "flaky ok"

    @flow.task(name="Task B", requires=["k"], produces=["out"])
    def b(flaky):
        log.append(("attempt", "b"))
        return {"out": 1}

    @flow.task
    def skipped(broken):
        log.append(("attempt", "skipped"))

    @flow.task(priority=Priority.CRITICAL, depends_on=["b"])
    def gate():
        log.append(("attempt", "gate"))
        raise Boom("gate")

    @flow.task(priority=Priority.LOW)
    def cancelled():
        log.append(("attempt", "cancelled"))

    strategy = Hooks(log)
    result = run_flow(flow, {"k": 1}, context_strategy=strategy, raise_on_failure=False)

    def for_task(task_id):
        return [entry[:3] if entry[0] == "restore" else entry
                for entry in log if entry[1] == task_id]

    assert result.tasks["skipped"].status is TaskStatus.SKIPPED
    assert result.tasks["cancelled"].status is TaskStatus.CANCELLED
    assert for_task("broken") == [
        ("preserve", "broken"), ("attempt", "broken"), ("restore", "broken", TaskStatus.FAILED)]
    assert for_task("flaky") == [
        ("preserve", "flaky"), ("attempt", "flaky"), ("attempt", "flaky"),
        ("restore", "flaky", TaskStatus.COMPLETED)]
    assert for_task("b") == [
        ("preserve", "b"), ("attempt", "b"), ("restore", "b", TaskStatus.COMPLETED)]
    assert for_task("gate") == [
        ("preserve", "gate"), ("attempt", "gate"), ("restore", "gate", TaskStatus.FAILED)]
    assert for_task("skipped") == [] and for_task("cancelled") == []
    restored_b = next(e for e in log if e[0] == "restore" and e[1] == "b")
    assert restored_b[3] == {"out": 1}  # the task's result is set when restore runs
    # return values of the hooks are ignored
    assert result.results == {"flaky": "flaky ok", "b": {"out": 1}}

    seen = strategy.seen["b"]
    assert seen["id"] == "b"
    assert seen["name"] == "Task B"
    assert seen["priority"] == Priority.NORMAL
    assert list(seen["dependencies"]) == ["flaky"]
    assert "k" in seen["context_requirements"]
    assert list(seen["output_context_keys"]) == ["out"]
    assert seen["result"] is None  # not run yet


def test_incremental_strategy_is_the_default_and_validates_its_bound():
    strategy = IncrementalContextStrategy()
    assert strategy.max_context_items == 1000
    assert isinstance(strategy, ContextPreservationStrategy)
    with pytest.raises(ValueError):
        IncrementalContextStrategy(max_context_items=-1)
    with pytest.raises(TypeError):
        ContextPreservationStrategy()  # abstract
