"""Property tests of the compiler on random DAGs (DESIGN.md, "Order" and definition errors):
every edge is respected, the priority rule picks each position, the order is
deterministic, and a back edge is reported as a real cycle."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdsl import CycleError, Flow

SETTINGS = settings(max_examples=75, deadline=None)


@attrs.frozen
class Dag:
    """Tasks ``t0 .. t{n-1}``; ``deps[i]`` are indexes < i (edges go from later to earlier),
    ``declared`` is the declaration order (a permutation), ``priority[i]`` any small int."""

    deps: tuple[frozenset[int], ...]
    priority: tuple[int, ...]
    declared: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.deps)

    def name(self, i: int) -> str:
        return f"t{i}"

    def descendants(self, i: int) -> set[int]:
        """Indexes that depend on ``i``, directly or not."""
        found: set[int] = set()
        for j in range(i + 1, self.size):
            if i in self.deps[j] or self.deps[j] & found:
                found.add(j)
        return found


@st.composite
def dags(draw: Any, max_size: int = 14) -> Dag:
    n = draw(st.integers(min_value=1, max_value=max_size))
    deps = tuple(
        frozenset(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=4)))
        if i else frozenset()
        for i in range(n)
    )
    priority = tuple(draw(st.lists(st.integers(min_value=0, max_value=5), min_size=n, max_size=n)))
    declared = tuple(draw(st.permutations(range(n))))
    return Dag(deps=deps, priority=priority, declared=declared)


def build(dag: Dag, extra: dict[int, int] | None = None) -> Flow:
    """A flow with the DAG's tasks, declared in ``dag.declared`` order; ``extra`` adds one
    more dependency (task -> dependency), e.g. a back edge."""
    flow = Flow("random")
    for i in dag.declared:
        deps = set(dag.deps[i])
        if extra and i in extra:
            deps.add(extra[i])

        def handler() -> None:
            return None

        flow.task(
            id=dag.name(i),
            priority=dag.priority[i],
            depends_on=[dag.name(d) for d in sorted(deps)],
        )(handler)
    return flow


@SETTINGS
@given(dags())
def test_every_edge_is_respected(dag: Dag) -> None:
    order = build(dag).compile().order
    assert sorted(order) == sorted(dag.name(i) for i in range(dag.size))
    position = {task: p for p, task in enumerate(order)}
    for i, deps in enumerate(dag.deps):
        for d in deps:
            assert position[dag.name(d)] < position[dag.name(i)], (dag.name(d), dag.name(i))


@SETTINGS
@given(dags())
def test_each_position_holds_the_best_ready_task(dag: Dag) -> None:
    order = build(dag).compile().order
    declared_at = {i: p for p, i in enumerate(dag.declared)}
    done: set[int] = set()
    for position, task in enumerate(order):
        ready = [i for i in range(dag.size) if i not in done and dag.deps[i] <= done]
        best = min(ready, key=lambda i: (dag.priority[i], declared_at[i]))
        assert task == dag.name(best), (position, order)
        done.add(best)


@SETTINGS
@given(dags())
def test_order_is_deterministic(dag: Dag) -> None:
    flow = build(dag)
    first = flow.compile().order
    assert build(dag).compile().order == first  # the same flow built again
    # recompiled after adding an independent task that loses every tie: the rest is unchanged
    flow.task(id="appended", priority=99)(lambda: None)
    assert flow.compile().order == (*first, "appended")


@SETTINGS
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(dag: Dag, data: Any) -> None:
    upstream = data.draw(st.integers(min_value=0, max_value=dag.size - 1), label="upstream")
    closing = data.draw(
        st.sampled_from(sorted(dag.descendants(upstream) | {upstream})), label="closing")
    # `upstream` now also depends on `closing`, which depends on it (or is it): a cycle.
    flow = build(dag, extra={upstream: closing})

    with pytest.raises(CycleError) as excinfo:
        flow.compile()

    cycle = list(excinfo.value.cycle)
    assert cycle, "a CycleError names the members of the cycle"
    if len(cycle) > 1 and cycle[0] == cycle[-1]:
        cycle.pop()  # the first member repeated last
    assert len(set(cycle)) == len(cycle), cycle
    edges = {(dag.name(i), dag.name(d)) for i, deps in enumerate(dag.deps) for d in deps}
    edges.add((dag.name(upstream), dag.name(closing)))  # (task, its dependency)
    pairs = list(zip(cycle, cycle[1:] + cycle[:1]))
    forward = all((b, a) in edges for a, b in pairs)  # each runs before the next
    backward = all((a, b) in edges for a, b in pairs)  # each depends on the next
    assert forward or backward, (cycle, sorted(edges))


@st.composite
def dags_declared_in_order(draw: Any) -> Dag:
    """DAGs declared after their dependencies, sometimes with priorities that never
    decrease along the declaration (the order is then the declaration order)."""
    dag = draw(dags())
    priority = dag.priority
    if draw(st.booleans()):
        priority = tuple(sorted(priority))
    return Dag(deps=dag.deps, priority=priority, declared=tuple(range(dag.size)))


@SETTINGS
@given(dags_declared_in_order())
def test_a_flow_declared_in_order_gets_the_same_priority_order(dag: Dag) -> None:
    order = build(dag).compile().order
    done: set[int] = set()
    for position, task in enumerate(order):
        ready = [i for i in range(dag.size) if i not in done and dag.deps[i] <= done]
        best = min(ready, key=lambda i: (dag.priority[i], i))
        assert task == dag.name(best), (position, order)
        done.add(best)
    if list(dag.priority) == sorted(dag.priority):
        assert order == tuple(dag.name(i) for i in range(dag.size))
