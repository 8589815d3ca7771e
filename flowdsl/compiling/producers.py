"""Context keys as edges: which task produces each key a task reads (DESIGN "Names are edges").

A declared input key is bound, at compile time, to (1) the latest ancestor that produces it,
else (2) the unique task producing it, which becomes an *inferred* dependency, else (3) it is
an error when several tasks produce it and none is an ancestor, else (4) it is looked up at
run time. Inferred edges come from unique producers only and are added before ancestry is
known, so the result does not depend on declaration order. A flow in which no task produces
a key pays nothing here beyond one pass over its tasks.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol, Sequence

from ..declaring.spec import TaskSpec
from ..errors import DefinitionError

__all__ = ["producers_of", "infer_edges", "Ancestry", "bind_producers", "prune_inferred"]


class Wiring(Protocol):
    """What this module needs of a task's binding: its dependencies, the keys it reads,
    and the edges inferred for it (producer id -> key)."""

    dependencies: list[str]
    inferred: Mapping[str, str]  # replaced, never changed in place (it may be shared)

    def keys(self) -> Iterable[str]: ...


def producers_of(specs: Sequence[TaskSpec]) -> dict[str, list[str]]:
    """Context key -> the tasks producing it, in declaration order (empty: nobody produces)."""
    producers: dict[str, list[str]] = {}
    for spec in specs:
        for key in spec.produces:
            producers.setdefault(key, []).append(spec.id)
    return producers


def infer_edges(producers: Mapping[str, list[str]], wirings: Mapping[str, Wiring],
                by_id: Mapping[str, TaskSpec]) -> None:
    """Add a dependency on the unique producer of each key a task reads (never itself)."""
    for key, tasks in producers.items():
        if key in by_id:
            raise DefinitionError(
                f"{key!r} is both a task id and a context key produced by "
                f"{', '.join(map(repr, tasks))}: rename one of them"
            )
    for task, wiring in wirings.items():
        for key in wiring.keys():
            found = producers.get(key)
            if not found:
                continue
            if len(found) == 1:  # the usual case: one producer
                producer = found[0]
                if producer == task:
                    continue
            else:
                others = [p for p in found if p != task]
                if len(others) != 1:
                    continue
                producer = others[0]
            if producer not in wiring.dependencies:
                wiring.dependencies.append(producer)
                wiring.inferred = {**wiring.inferred, producer: key}


def cycle_detail(cycle: Sequence[str], wirings: Mapping[str, Wiring]) -> str:
    """Name the keys behind the inferred edges of a cycle, for `CycleError`'s message."""
    notes = []
    for a, b in zip(cycle, cycle[1:]):
        for upstream, downstream in ((a, b), (b, a)):
            key = wirings[downstream].inferred.get(upstream) if downstream in wirings else None
            if key is not None:
                notes.append(f"{upstream!r} -> {downstream!r} is inferred from key {key!r}, "
                             f"which {upstream!r} produces and {downstream!r} reads")
    return "; " + "; ".join(dict.fromkeys(notes)) if notes else ""


class Ancestry:
    """Ancestor sets as int bitsets over plan positions, computed on first use."""

    def __init__(self, order: Sequence[str], wirings: Mapping[str, Wiring]) -> None:
        self._order = order
        self._wirings = wirings
        self.position: dict[str, int] = {}
        self._bits: dict[str, int] | None = None

    def positions(self) -> dict[str, int]:
        """Task id -> its index in the plan order."""
        if not self.position:
            self.position = {node: i for i, node in enumerate(self._order)}
        return self.position

    def is_ancestor(self, upstream: str, task: str) -> bool:
        if self._bits is None:
            bits: dict[str, int] = {}
            position = self.positions()
            for node in self._order:
                acc = 0
                for dep in self._wirings[node].dependencies:
                    acc |= bits[dep] | (1 << position[dep])
                bits[node] = acc
            self._bits = bits
        return bool(self._bits[task] >> self.position[upstream] & 1)


def prune_inferred(wirings: Mapping[str, Wiring], ancestry: Ancestry) -> None:
    """Drop an inferred edge that another dependency already implies (the producer is its
    ancestor): the order is the same, and declared wiring stays as the user wrote it.
    Ancestor sets do not change, since the producer stays an ancestor through that path."""
    for wiring in wirings.values():
        if not wiring.inferred:
            continue
        for producer in list(wiring.inferred):
            if any(dep != producer and ancestry.is_ancestor(producer, dep)
                   for dep in wiring.dependencies):
                wiring.dependencies.remove(producer)
                wiring.inferred = {p: k for p, k in wiring.inferred.items() if p != producer}


def bind_producers(order: Sequence[str], producers: Mapping[str, list[str]],
                   wirings: Mapping[str, Wiring],
                   ancestry: Ancestry) -> dict[str, dict[str, str]]:
    """Check the producers of each key are ordered; bind each input key to its producer:
    task -> {key: producer id}."""
    bound: dict[str, dict[str, str]] = {}
    if not producers:
        return bound
    position = ancestry.positions()
    in_order = {key: sorted(tasks, key=position.__getitem__) if len(tasks) > 1 else tasks
                for key, tasks in producers.items()}
    for task in order:
        chosen: dict[str, str] = {}
        for key in wirings[task].keys():
            found = in_order.get(key)
            if not found:
                continue
            if len(found) == 1:
                if found[0] != task:
                    # a unique producer is a dependency (`infer_edges`) or was pruned as
                    # implied by another one: an ancestor, with no ancestry to compute
                    chosen[key] = found[0]
                continue
            candidates = [p for p in found if p != task]
            if not candidates:
                continue
            if len(candidates) == 1:  # the other producer is the task itself: as above
                chosen[key] = candidates[0]
                continue
            upstream = [p for p in candidates if ancestry.is_ancestor(p, task)]
            if not upstream:
                raise DefinitionError(
                    f"task {task!r} reads context key {key!r}, which "
                    f"{', '.join(map(repr, candidates))} produce, none of them upstream of "
                    f"{task!r}: add depends_on=[{candidates[-1]!r}] (the producer whose value "
                    f"it should read) to {task!r}"
                )
            chosen[key] = upstream[-1]  # the latest: producers are ordered by ancestry
        if chosen:
            bound[task] = chosen
    for key, tasks in in_order.items():
        for earlier, later in zip(tasks, tasks[1:]):
            if not ancestry.is_ancestor(earlier, later):
                raise DefinitionError(
                    f"context key {key!r} is produced by {earlier!r} and {later!r}, neither of "
                    f"which is upstream of the other: add depends_on=[{earlier!r}] to {later!r} "
                    "(or the reverse) so the value is well defined"
                )
    return bound
