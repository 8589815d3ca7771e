"""The records' bound (DESIGN: at most ``max_context_items``, lowest importance evicted first,
oldest first among equals) holds for every reader, although the runtime evicts in batches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdsl import Flow, IncrementalContextStrategy, current_task
from flowdsl.running.records import Records, TaskRecord


def _one_at_a_time(limit: int, added: list[tuple[str, int]]) -> list[str]:
    """The reference: after each record is added, evict one while over the limit."""
    kept: list[tuple[str, int, int]] = []  # id, importance, age
    for age, (task_id, importance) in enumerate(added):
        kept.append((task_id, importance, age))
        while len(kept) > limit:
            kept.remove(min(kept, key=lambda r: (r[1], r[2])))
    return sorted(r[0] for r in kept)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(min_value=0, max_value=40),
       steps=st.lists(st.tuples(st.integers(min_value=0, max_value=6), st.booleans()),
                      max_size=200))
def test_every_read_sees_what_one_eviction_per_task_would_keep(limit, steps):
    """Records are added with random importances; a reader looks in at random moments
    (``view``, ``record``, ``all``) and always sees exactly the reference's kept set."""
    book = Records(limit)
    added: list[tuple[str, int]] = []
    for number, (importance, look) in enumerate(steps):
        task_id = f"t{number}"
        record = TaskRecord(task_id, importance, -1)
        book.keep(record)  # (no writes: the importance stays)
        added.append((task_id, importance))
        if look:
            expected = _one_at_a_time(limit, added)
            assert sorted(book.view) == expected
            assert len(book.view) == len(expected)
            assert sorted(r.task_id for r in book.all()) == expected
            assert all(book.record(t) is not None for t in expected)
    expected = _one_at_a_time(limit, added)
    assert sorted(book.view) == expected
    pruned = {task_id for task_id, _ in added} - set(expected)
    assert book.pruned_ids() == pruned
    assert all(book.record(task_id) is None for task_id in pruned)


def test_a_task_reading_the_records_mid_run_sees_the_bound():
    """A 300-task chain with ``max_context_items=20``: every task counts the records it can
    see and checks its predecessor's is among them; after the run, exactly 20 are kept and
    the pruned ones hold no reads or writes."""
    flow = Flow("bounded-records")
    seen: list[int] = []

    def step(context):
        me = current_task()
        seen.append(len(context.records))
        number = int(me.task_id[1:])
        if number:
            assert f"t{number - 1}" in context.records  # the newest is never evicted first
        context.shared_state[f"k{number}"] = number  # a write: one importance more
        return number

    for i in range(300):
        flow.add_task(f"t{i}", f"t{i}", step, dependencies=[f"t{i - 1}"] if i else [])
    result = flow.run(context_strategy=IncrementalContextStrategy(max_context_items=20))

    assert seen == [min(i, 20) for i in range(300)]
    records = result.context.records
    assert sorted(records, key=lambda t: int(t[1:])) == [f"t{i}" for i in range(280, 300)]
    evicted = result.tasks["t0"]
    assert dict(evicted.reads) == {} and tuple(evicted.writes) == ()
    assert result.context.delta("t299") == {"k299": 299}


def test_a_record_kept_twice_under_one_id_does_not_break_the_trim():
    """Defensive: an id whose record was kept twice is evicted once, without an error."""
    book = Records(1)
    for task_id in ["a", "a", "b", "c"] + [f"t{i}" for i in range(20)]:
        book.keep(TaskRecord(task_id, 1, -1))
    assert list(book.view) == ["t19"]
    assert {"a", "b", "c"} <= book.pruned_ids()


def test_a_produces_chain_records_what_each_task_read_and_evicts_it():
    """Each task of a chain reads the key its predecessor produced: its record's ``reads``
    name that key with the value read (the binder keeps the arguments, not a dict); once
    evicted, a record reads and wrote nothing."""
    flow = Flow("produces-records")

    def adder(key: str):
        def add(value: int) -> dict[str, int]:
            return {key: value + 1}
        return add

    for i in range(30):
        previous = f"k{i - 1}" if i else "seed"
        flow.task(id=f"t{i}", produces=[f"k{i}"], bind={"value": f"key:{previous}"},
                  depends_on=[f"t{i - 1}"] if i else None)(adder(f"k{i}"))
    result = flow.run({"seed": 0}, context_strategy=IncrementalContextStrategy(max_context_items=10))

    records = result.context.records
    assert len(records) == 10
    assert dict(records["t29"].reads) == {"k28": 29}
    assert records["t29"].delta == {"k29": 30}
    assert result.tasks["t0"].reads == {} and result.tasks["t0"].delta == {}
