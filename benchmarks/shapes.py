"""Flow shapes shared by the benchmarks and by compare_peers.py.

A :class:`Shape` is a list of task definitions (id, handler, parameters, extra
dependencies, produced keys) plus the initial context. The same handler objects
are run three ways, so every figure compares like with like:

* ``shape.build_flow()``  -> a ``flowdsl.Flow`` registered with ``@flow.task``;
* ``shape.plain_loop()``  -> the baseline: a Python loop calling the handlers in
  topological order, with one dict holding the results and produced keys;
* ``shape.graphlib_loop()`` -> the same, ordered by ``graphlib.TopologicalSorter``.

Handlers are generated with ``exec`` so that each parameter can be *named* after the
task or context key it receives: flowdsl binds parameters by name (a parameter named
like a task id receives that task's result; any other name is a context key).
"""

from __future__ import annotations

import asyncio
import graphlib
import random
from dataclasses import dataclass, field
from typing import Any, Callable

#: The small dict passed along every chain.
PAYLOAD = {"id": 1, "value": 2.5, "tags": ["a", "b"]}


def make_function(name: str, params: list[str] | tuple[str, ...], body: str, *,
                  is_async: bool = False, env: dict[str, Any] | None = None,
                  annotate: str | None = None) -> Callable:
    """Return a new function ``name(*params)`` that returns ``body`` (an expression).

    ``env`` supplies the globals the body may use; ``annotate`` (e.g. ``"dict"``)
    adds that annotation to every parameter and to the return value (Hamilton needs
    type hints).
    """
    if annotate:
        signature = ", ".join(f"{p}: {annotate}" for p in params)
        returns = f" -> {annotate}"
    else:
        signature = ", ".join(params)
        returns = ""
    source = (f"{'async ' if is_async else ''}def {name}({signature}){returns}:\n"
              f"    return {body}\n")
    namespace: dict[str, Any] = dict(env or {})
    exec(source, namespace)  # noqa: S102 - generated from identifiers built here
    return namespace[name]


@dataclass
class TaskDef:
    id: str
    fn: Callable
    params: tuple[str, ...]            # handler parameters, in order (task ids or context keys)
    depends_on: tuple[str, ...] = ()   # dependencies not expressed by a parameter
    produces: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass
class Shape:
    name: str
    tasks: list[TaskDef]
    initial: dict[str, Any]
    is_async: bool = False
    #: what the last task must return (checked once per benchmark, outside the timing)
    expected_last: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def edges(self) -> int:
        ids = {t.id for t in self.tasks}
        return sum(len({p for p in t.params if p in ids} | set(t.depends_on)) for t in self.tasks)

    # -- flowdsl -------------------------------------------------------------------
    def register(self, flow) -> Any:
        """Register every task on ``flow`` with the decorator form; return ``flow``."""
        for t in self.tasks:
            options: dict[str, Any] = {"id": t.id}
            if t.depends_on:
                options["depends_on"] = list(t.depends_on)
            if t.produces:
                options["produces"] = list(t.produces)
            if t.requires:
                options["requires"] = list(t.requires)
            flow.task(**options)(t.fn)
        return flow

    def build_flow(self, name: str | None = None):
        from flowdsl import Flow

        return self.register(Flow(name or self.name))

    # -- baselines -----------------------------------------------------------------
    def steps(self) -> list[tuple[str, Callable, tuple[str, ...], tuple[str, ...]]]:
        """(task id, handler, parameter names, produced keys) in declaration order,
        which every shape here keeps topological."""
        return [(t.id, t.fn, t.params, t.produces) for t in self.tasks]

    def graph(self) -> dict[str, set[str]]:
        ids = {t.id for t in self.tasks}
        return {t.id: {p for p in t.params if p in ids} | set(t.depends_on) for t in self.tasks}

    def plain_loop(self) -> Callable[[], dict]:
        """The baseline: call the handlers in order with a dict of results."""
        steps, initial = self.steps(), self.initial
        if self.is_async:
            return lambda: asyncio.run(_plain_loop_async(steps, initial))
        return lambda: _plain_loop(steps, initial)

    def graphlib_loop(self) -> Callable[[], dict]:
        """The baseline ordered by ``graphlib.TopologicalSorter`` (built per run)."""
        graph, initial = self.graph(), self.initial
        by_id = {t.id: (t.fn, t.params, t.produces) for t in self.tasks}
        return lambda: _graphlib_loop(graph, by_id, initial)


def _plain_loop(steps, initial):
    results: dict[str, Any] = {}
    for task_id, fn, params, produces in steps:
        out = fn(*[results[p] if p in results else initial[p] for p in params])
        results[task_id] = out
        for key in produces:
            results[key] = out[key]
    return results


async def _plain_loop_async(steps, initial):
    results: dict[str, Any] = {}
    for task_id, fn, params, produces in steps:
        out = await fn(*[results[p] if p in results else initial[p] for p in params])
        results[task_id] = out
        for key in produces:
            results[key] = out[key]
    return results


def _graphlib_loop(graph, by_id, initial):
    results: dict[str, Any] = {}
    for task_id in graphlib.TopologicalSorter(graph).static_order():
        fn, params, produces = by_id[task_id]
        out = fn(*[results[p] if p in results else initial[p] for p in params])
        results[task_id] = out
        for key in produces:
            results[key] = out[key]
    return results


# ---------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------

def chain(n: int, async_: bool = False, produces: bool = False, *,
          initial: dict[str, Any] | None = None) -> Shape:
    """``n`` no-op tasks ``t0 -> t1 -> ... -> t{n-1}`` passing :data:`PAYLOAD` along.

    ``t0`` reads the context key ``payload``. Each later task has one parameter named
    after its predecessor (so it receives the predecessor's result) and returns it.
    With ``produces=True`` task ``t{i}`` declares ``produces=["k{i}"]`` and returns
    ``{"k{i}": value}``; task ``t{i+1}`` reads ``k{i}`` as a parameter (a context key)
    and depends on ``t{i}`` explicitly.
    """
    tasks = []
    prev_param = "payload"
    for i in range(n):
        tid = f"t{i}"
        if produces:
            key = f"k{i}"
            fn = make_function(tid, [prev_param], f"{{{key!r}: {prev_param}}}", is_async=async_)
            tasks.append(TaskDef(tid, fn, (prev_param,),
                                 depends_on=(f"t{i - 1}",) if i else (), produces=(key,)))
            prev_param = key
        else:
            fn = make_function(tid, [prev_param], prev_param, is_async=async_)
            tasks.append(TaskDef(tid, fn, (prev_param,)))
            prev_param = tid
    context = {"payload": PAYLOAD} if initial is None else initial
    expected = {f"k{n - 1}": PAYLOAD} if produces else PAYLOAD
    kind = ("async " if async_ else "") + ("produces-" if produces else "")
    return Shape(f"{kind}chain-{n}", tasks, context, is_async=async_, expected_last=expected)


def wide(n: int) -> Shape:
    """One root, ``n`` independent tasks reading the root's result, one sink taking
    all ``n`` results as parameters (``n + 2`` tasks)."""
    tasks = [TaskDef("root", make_function("root", ["payload"], "payload"), ("payload",))]
    middle = [f"w{i}" for i in range(n)]
    for tid in middle:
        tasks.append(TaskDef(tid, make_function(tid, ["root"], "root"), ("root",)))
    sink = make_function("sink", middle, f"len(({', '.join(middle)},))")
    tasks.append(TaskDef("sink", sink, tuple(middle)))
    return Shape(f"wide-{n}", tasks, {"payload": PAYLOAD}, expected_last=n)


def lattice(layers: int, width: int = 30, fan_in: int = 3, seed: int = 7) -> Shape:
    """``layers`` layers of ``width`` tasks; each task below the first takes the
    results of ``fan_in`` tasks of the layer above (chosen at random, fixed seed)."""
    rng = random.Random(seed)
    tasks = []
    for j in range(width):
        tid = f"l0_{j}"
        tasks.append(TaskDef(tid, make_function(tid, ["payload"], "payload"), ("payload",)))
    for layer in range(1, layers):
        for j in range(width):
            tid = f"l{layer}_{j}"
            parents = tuple(f"l{layer - 1}_{p}" for p in sorted(rng.sample(range(width), fan_in)))
            tasks.append(TaskDef(tid, make_function(tid, parents, parents[0]), parents))
    return Shape(f"lattice-{layers}x{width}", tasks, {"payload": PAYLOAD},
                 expected_last=PAYLOAD)


def dense(n: int, max_deps: int = 5, seed: int = 11) -> Shape:
    """``n`` tasks; task ``i`` takes the results of ``min(i, max_deps)`` random earlier
    tasks as parameters (about ``n * max_deps`` edges). Used by the compile benchmark."""
    rng = random.Random(seed)
    tasks = [TaskDef("t0", make_function("t0", ["payload"], "payload"), ("payload",))]
    for i in range(1, n):
        parents = tuple(f"t{p}" for p in sorted(rng.sample(range(i), min(i, max_deps))))
        tasks.append(TaskDef(f"t{i}", make_function(f"t{i}", parents, parents[-1]), parents))
    return Shape(f"dense-{n}", tasks, {"payload": PAYLOAD})


# ---------------------------------------------------------------------------------
# Context accuracy: a random DAG whose handlers check every value they receive
# ---------------------------------------------------------------------------------

@dataclass
class AccuracyDag:
    shape: Shape
    tally: dict[str, int]      # {"checked": .., "correct": ..}, filled by the handlers
    expected_checks: int       # checks one full run performs
    mismatches: list[tuple[str, str, Any, Any]]  # (task, parameter, received, expected), first 20

    def reset(self) -> None:
        self.tally["checked"] = self.tally["correct"] = 0
        self.mismatches.clear()

    @property
    def share(self) -> float:
        return self.tally["correct"] / self.tally["checked"] if self.tally["checked"] else 0.0


def accuracy_dag(n: int, seed: int = 3, max_parents: int = 3, max_reads: int = 3,
                 spine_every: int = 5) -> AccuracyDag:
    """A random DAG of ``n`` tasks ``n0 .. n{n-1}`` for the context-accuracy check.

    * every task produces its own key ``v{i}`` (a value unique to it);
    * every ``spine_every``-th task is also on the *spine*: it depends on the previous
      spine task and produces the shared key ``spine`` too, so ``spine`` is rewritten
      many times during a run (the initial context holds a decoy ``spine`` as well);
    * a task declares ``requires=`` (and has parameters named after) up to
      ``max_reads`` keys ``v{j}`` of random ancestors, plus ``spine`` when a spine
      task is among its ancestors: it must receive the value of its *latest ancestor*
      producer, whatever other spine tasks wrote in between;
    * a task with parents has one parameter named after a parent (it receives that
      task's result); the other parents are ``depends_on``.

    Each handler compares every argument with the value the producer returned and
    counts the result in ``tally``.
    """
    rng = random.Random(seed)
    tally = {"checked": 0, "correct": 0}
    mismatches: list = []
    outputs: list[dict[str, Any]] = []
    ancestors: list[int] = []       # bitset of ancestor indexes, per task
    expected_args: list[tuple] = []
    tasks: list[TaskDef] = []
    last_spine: int | None = None
    total_checks = 0

    def check(i: int, received: tuple) -> dict[str, Any]:
        for name, got, want in zip(tasks[i].params, received, expected_args[i]):
            tally["checked"] += 1
            if got == want:
                tally["correct"] += 1
            elif len(mismatches) < 20:
                mismatches.append((tasks[i].id, name, got, want))
        return outputs[i]

    for i in range(n):
        tid = f"n{i}"
        window = range(max(0, i - 40), i)           # parents nearby keep the DAG deep
        parents = set(rng.sample(window, min(len(window), rng.randint(0, max_parents))))
        on_spine = i % spine_every == 0
        if on_spine and last_spine is not None:
            parents.add(last_spine)
        anc = 0
        for p in parents:
            anc |= ancestors[p] | (1 << p)
        ancestors.append(anc)

        anc_list = [j for j in range(i) if anc >> j & 1]
        reads = sorted(rng.sample(anc_list, min(len(anc_list), rng.randint(1, max_reads)))) \
            if anc_list else []
        params: list[str] = []
        expected: list[Any] = []
        depends_on = sorted(parents)
        if parents:
            passed = rng.choice(sorted(parents))
            depends_on.remove(passed)
            params.append(f"n{passed}")
            expected.append(outputs[passed])
        keys = [f"v{j}" for j in reads]
        for j in reads:
            params.append(f"v{j}")
            expected.append(outputs[j][f"v{j}"])
        spine_ancestors = [j for j in anc_list if j % spine_every == 0]
        if spine_ancestors and not on_spine:
            latest = max(spine_ancestors)   # spine tasks form a chain: the max is the latest
            params.append("spine")
            keys.append("spine")
            expected.append(outputs[latest]["spine"])

        produced = {f"v{i}": f"v{i}@{tid}"}
        if on_spine:
            produced["spine"] = f"spine@{tid}"
            last_spine = i
        outputs.append(produced)
        expected_args.append(tuple(expected))
        total_checks += len(params)

        body = f"_check({i}, ({''.join(p + ', ' for p in params)}))"
        fn = make_function(tid, params, body, env={"_check": check})
        tasks.append(TaskDef(tid, fn, tuple(params), depends_on=tuple(f"n{d}" for d in depends_on),
                             produces=tuple(produced), requires=tuple(keys)))

    shape = Shape(f"accuracy-{n}", tasks, {"spine": "decoy from the initial context"},
                  notes={"spine_every": spine_every})
    return AccuracyDag(shape, tally, total_checks, mismatches)


# ---------------------------------------------------------------------------------
# Helpers for the flowdsl side of the benchmarks
# ---------------------------------------------------------------------------------

def check_run(result, shape: Shape) -> None:
    """Fail loudly if a run did not succeed or its last result is not the expected one
    (checked outside the timed region)."""
    from flowdsl import RunStatus

    if result.status != RunStatus.SUCCEEDED:
        failed = {tid: rec.error for tid, rec in result.tasks.items() if rec.error is not None}
        raise AssertionError(f"{shape.name}: run {result.status}, errors {dict(list(failed.items())[:3])}")
    if shape.expected_last is not None:
        last = shape.tasks[-1].id
        assert result.results[last] == shape.expected_last, f"{shape.name}: wrong result for {last}"


def self_reported(flow, initial, repeat: int = 5) -> dict[str, float]:
    """flowdsl's own view of its overhead: ``flowdsl.measure_overhead`` (median, min,
    max of the summary's ``orchestration_overhead_per_task``), in µs per task."""
    import flowdsl

    m = flowdsl.measure_overhead(flow, initial, repeat=repeat)
    return {
        "self_reported_overhead_us": round(m.median * 1e6, 3),
        "self_reported_min_us": round(m.min * 1e6, 3),
        "self_reported_max_us": round(m.max * 1e6, 3),
        "handler_time_ms": round(m.handler_time * 1e3, 3),
        "tasks_per_run": m.tasks,
    }


def gc_activity(flow, initial, runs: int = 10) -> dict[str, float]:
    """How often Python's cyclic garbage collector runs a full (generation 2) pass
    during ``flow.run(initial)``, and the milliseconds per run spent in all passes."""
    import gc
    import time

    passes = {0: 0, 1: 0, 2: 0}
    spent = [0.0]
    started: list[float] = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent[0] += time.perf_counter() - started.pop()
            passes[info["generation"]] += 1

    gc.collect()
    gc.callbacks.append(callback)
    try:
        for _ in range(runs):
            flow.run(initial)
    finally:
        gc.callbacks.remove(callback)
    return {"gc_full_passes_per_run": passes[2] / runs, "gc_ms_per_run": round(spent[0] / runs * 1e3, 3)}
