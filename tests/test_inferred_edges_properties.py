"""Property tests of "Names are edges" on random flows where every task produces its own key
and reads keys of other tasks: the bindings and the order's constraints do not depend on
declaration order, every reader runs after the producer of each key it reads, and a key
read against the grain closes a cycle that names it."""

from __future__ import annotations

import inspect

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdsl import CycleError, Flow

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def flows(draw: st.DrawFn) -> tuple[list[frozenset[int]], list[int]]:
    """``reads[i]``: indexes j < i whose key task i reads; a declaration permutation."""
    n = draw(st.integers(min_value=1, max_value=14))
    reads = [frozenset(draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else ())
             for i in range(n)]
    declared = draw(st.permutations(range(n)))
    return reads, list(declared)


def build(reads: list[frozenset[int]], declared: list[int]) -> Flow:
    flow = Flow("keys")
    for i in declared:
        params = [inspect.Parameter(f"k{j}", inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for j in sorted(reads[i])]

        def handler(*values: object, _i: int = i) -> dict[str, object]:
            return {f"k{_i}": (_i, values)}

        handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        flow.task(id=f"t{i}", produces=[f"k{i}"])(handler)
    return flow


@SETTINGS
@given(flows())
def test_each_read_key_is_bound_to_its_unique_producer_whatever_the_declaration_order(
        case: tuple[list[frozenset[int]], list[int]]) -> None:
    reads, declared = case
    plan = build(reads, declared).compile()
    again = build(reads, sorted(declared)).compile()
    position = {task: k for k, task in enumerate(plan.order)}
    for i, keys in enumerate(reads):
        step = plan[f"t{i}"]
        assert dict(step.producers) == {f"k{j}": f"t{j}" for j in keys}
        assert dict(step.producers) == dict(again[f"t{i}"].producers)
        for j in keys:
            assert position[f"t{j}"] < position[f"t{i}"]
        # an inferred edge is kept only where no other dependency implies it
        assert set(step.inferred) <= set(step.dependencies)
        assert all(step.inferred[dep] == f"k{dep[1:]}" for dep in step.inferred)
    assert plan.inputs == ()


@SETTINGS
@given(flows(), st.data())
def test_a_key_read_against_the_grain_is_a_cycle_naming_it(
        case: tuple[list[frozenset[int]], list[int]], data: st.DataObject) -> None:
    reads, declared = case
    n = len(reads)
    if n < 2:
        return
    # make t0 read the key of a task that (transitively) reads k0
    readers_of_0 = {0}
    for i in range(1, n):
        if reads[i] & readers_of_0:
            readers_of_0.add(i)
    later = sorted(readers_of_0 - {0})
    if not later:
        return
    back = data.draw(st.sampled_from(later))
    reads = [frozenset({back}), *reads[1:]]
    try:
        build(reads, declared).compile()
    except CycleError as exc:
        assert "inferred from key" in str(exc)
        assert "t0" in exc.cycle
    else:
        raise AssertionError("no cycle reported")
