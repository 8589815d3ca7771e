"""Opening a run in the store: start a new one or resume an earlier one (refusing what cannot
be resumed, restoring what stays completed), and build the `RunJournal` the runtime writes
through."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import ResumeError, SerializationError, StoreError
from ..running.journal import Restored, RestoredElement
from .fingerprint import constants_changed, constants_read, plan_fingerprints
from ..status import RunStatus
from .codec import Types, decode, encode, same_encoding
from .journal import RunJournal
from .owner import identity
from .schema import dumps, now

if TYPE_CHECKING:  # the store calls open_run with itself
    from ..compiling.plan import Plan
    from .base import SqlStore

__all__ = ["open_run", "stored_targets", "fingerprints_of", "encode_inputs"]


def fingerprints_of(plan: Plan) -> dict[str, str]:
    """The plan's task fingerprints, computed once per plan (again only when a module
    constant a handler reads was reassigned since, as a notebook cell run again does)."""
    cached: dict[str, str] | None = plan.derived.get("fingerprints")
    if cached is None or constants_changed(plan.derived["constants"]):
        cached = plan.derived["fingerprints"] = plan_fingerprints(
            plan, {step.id: step.serializer for step in plan.steps})
        plan.derived["constants"] = constants_read(plan)
    return cached


def _fingerprints_json(plan: Plan, fingerprints: dict[str, str]) -> str:
    """``fingerprints`` (the plan's) as the store keeps them: JSON, made once per plan like
    them (at every run it would cost as much as a few tasks' writes)."""
    made: tuple[dict[str, str], str] | None = plan.derived.get("fingerprints_json")
    if made is None or made[0] is not fingerprints:
        made = plan.derived["fingerprints_json"] = (fingerprints, dumps(fingerprints))
    return made[1]


def encode_inputs(given: Mapping[str, Any], serializer: str,
                  types: Types) -> tuple[str, bytes | str]:
    """The run's inputs encoded, and the codec used: JSON whenever they have a JSON encoding
    (so showing a run shows them, also under ``serializer="pickle"``). One that cannot be
    encoded is a `SerializationError` naming its key and suggesting ``resources=``."""
    if serializer == "pickle":
        try:
            return "json", encode(dict(given), "json", "the run's inputs", types=types)
        except SerializationError:
            pass
    try:
        return serializer, encode(dict(given), serializer, "the run's inputs", types=types)
    except SerializationError as whole:
        for key, value in given.items():
            try:
                encode(value, serializer, f"input {key!r}", f"input {key!r}", types=types)
            except SerializationError as exc:
                raise SerializationError(
                    f"{exc}. A run's inputs are stored with the run: pass a live object (a "
                    "connection, a client) as a resource instead, never stored: "
                    f"flow.run(..., resources={{{key!r}: ...}})") from exc
        raise whole  # pragma: no cover - some key failed above


def _changed_tasks(old: Mapping[str, str], new: Mapping[str, str],
                   completed: set[str]) -> dict[str, list[str]]:
    """The changes that need ``force``: completed tasks whose definition changed or that
    were removed. A task that did not complete (failed, skipped, cancelled, never started)
    may change freely (fixing the failed task and resuming is the common case), and an
    added task simply runs."""
    return {
        "removed": sorted(t for t in set(old) - set(new) if t in completed),
        "changed": sorted(t for t in set(old) & set(new) if old[t] != new[t] and t in completed),
    }


def _kept_tasks(plan: Plan, completed: set[str], old: Mapping[str, str], new: Mapping[str, str],
                changed_inputs: set[str], skipped: set[str] | None = None
                ) -> tuple[set[str], set[str]]:
    """Completed tasks that stay completed: same fingerprint, no changed input read, and every
    upstream task kept too (everything downstream of a re-run task re-runs). A task SKIPPED
    under the same conditions (its upstream kept or skipped so: a false ``run_if``, not a
    failure, is behind it) counts as kept for its dependants: its gate decides the same again.
    Returns (kept completed tasks, such skipped ones)."""
    kept: set[str] = set()
    quiet: set[str] = set()  # kept, or skipped by a condition that holds again
    skipped = skipped or set()
    for step in plan.steps:  # plan order: upstream first
        task = step.id
        if ((task in completed or task in skipped) and old.get(task) == new[task]
                and not changed_inputs.intersection(step.inputs)
                and all(dep in quiet for dep in step.dependencies)):
            quiet.add(task)
            if task in completed:
                kept.add(task)
    return kept, quiet - kept


def stored_targets(store: Any, run_id: str) -> tuple[str, ...]:
    """The targets run ``run_id`` was made with (``()``: the whole flow, or no such run);
    ``store`` is a store or what `open_store` takes."""
    from . import open_store

    opened = open_store(store)
    try:
        rows = opened.read("SELECT targets FROM runs WHERE run_id = ?", (run_id,))
    finally:
        if opened is not store:
            opened.close()
    if not rows:
        return ()
    return _targets(opened, f"run {run_id!r}", rows[0]["targets"])


def _targets(store: Any, where: str, stored: Any) -> tuple[str, ...]:
    """The stored targets of a run (``()``: the whole flow); malformed ones are a
    `StoreError` naming the run."""
    if not stored:
        return ()
    try:
        found = json.loads(stored)
        if not isinstance(found, list) or not all(isinstance(t, str) for t in found):
            raise ValueError("a JSON list of task ids was expected")
    except (TypeError, ValueError) as exc:
        raise StoreError(f"run store {store.label}: {where} has malformed targets: "
                         f"{type(exc).__name__}: {exc}") from exc
    return tuple(found)


def open_run(store: SqlStore, plan: Plan, *, flow: str, serializer: str, run_id: str,
             inputs: Mapping[str, Any] | None, resume: str | None, force: bool,
             check_inputs: Callable[[Mapping[str, Any]], None]) -> RunJournal:
    """Start run ``run_id``, or resume run ``resume``; raise `ResumeError` when refused."""
    fingerprints = fingerprints_of(plan)  # computed (once per plan) outside the transaction
    with store.write() as db:
        if resume is None:
            journal = _start_run(db, store, plan, flow, serializer, run_id, inputs,
                                 check_inputs)
        else:
            journal = _resume_run(db, store, plan, flow, serializer, resume, inputs, force,
                                  check_inputs)
    journal.fingerprints = fingerprints
    return journal


def _order(plan: Plan) -> str:
    """The plan's task order, stored so that a run is shown in plan order (JSON, made once
    per plan)."""
    text: str | None = plan.derived.get("order_json")
    if text is None:
        text = plan.derived["order_json"] = json.dumps(list(plan.order))
    return text


def _edges(plan: Plan) -> str:
    """The plan's dependencies (inferred ones included), stored so that a report drawn from
    the store shows the run's graph (JSON, made once per plan)."""
    text: str | None = plan.derived.get("edges_json")
    if text is None:
        text = plan.derived["edges_json"] = json.dumps(
            {step.id: list(step.dependencies) for step in plan.steps})
    return text


def _fingerprints(store: SqlStore, where: str, stored: Any) -> dict[str, str]:
    """The stored task fingerprints; malformed ones are a `StoreError` naming the run."""
    try:
        found = json.loads(stored)
        if not isinstance(found, dict):
            raise ValueError(f"a JSON object was expected, not {type(found).__name__}")
    except (TypeError, ValueError) as exc:
        raise StoreError(f"run store {store.label}: {where} has malformed task "
                         f"fingerprints: {type(exc).__name__}: {exc}") from exc
    return found


def _start_run(db: Any, store: SqlStore, plan: Plan, flow: str, serializer: str,
               run_id: str, inputs: Mapping[str, Any] | None,
               check_inputs: Callable[[Mapping[str, Any]], None]) -> RunJournal:
    """A new run: refuse an existing id, check the inputs, write the run and its session."""
    host, pid, started = identity()
    stamp = now()
    if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
        raise ResumeError(f"run {run_id!r} already exists in {store.label}: pass "
                          f"resume={run_id!r} to continue it, or another run_id")
    given = dict(inputs or {})
    check_inputs(given)
    inputs_codec, inputs_blob = encode_inputs(given, serializer, plan.types)
    db.execute(
        "INSERT INTO runs (run_id, flow, status, started, total_tasks, inputs, "
        "inputs_codec, fingerprints, owner_host, owner_pid, owner_start, plan_order, "
        "targets, plan_edges) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, flow, stamp, len(plan.steps),
         store.blob(inputs_blob), inputs_codec, _fingerprints_json(plan, fingerprints_of(plan)),
         host, pid,
         started, _order(plan),
         dumps(list(plan.targets)) if plan.targets else None, _edges(plan)))
    db.execute("INSERT INTO sessions (run_id, session, host, pid, started, status) "
               "VALUES (?, 1, ?, ?, ?, 'running')", (run_id, host, pid, stamp))
    return RunJournal(store, flow, run_id, 1, given, [], 0, claim=store.claim(db, run_id, 1),
                      types=plan.types)


def _resume_run(db: Any, store: SqlStore, plan: Plan, flow: str, serializer: str,
                resume: str, inputs: Mapping[str, Any] | None, force: bool,
                check_inputs: Callable[[Mapping[str, Any]], None]) -> RunJournal:
    """An earlier run continued: refuse what cannot be resumed, restore what stays completed,
    and open a new session (none for a SUCCEEDED run that stays complete)."""
    fingerprints = fingerprints_of(plan)
    row = db.execute("SELECT flow, status, inputs, inputs_codec, fingerprints, owner_host, "
                     "owner_pid, owner_start, targets FROM runs WHERE run_id = ?"
                     + store.for_update, (resume,)).fetchone()
    if row is None:
        raise ResumeError(f"cannot resume run {resume!r}: it is not in {store.label}")
    stored_targets = _targets(store, f"run {resume!r}", row[8])
    if stored_targets != tuple(plan.targets):
        raise ResumeError(
            f"cannot resume run {resume!r} with targets={list(plan.targets) or None!r}: it was "
            + (f"run with targets={list(stored_targets)!r}" if stored_targets
               else "a run of the whole flow")
            + ": resume it with the same targets (or none, to keep them)")
    status, old_prints = row[1], _fingerprints(store, f"run {resume!r}", row[4])
    completed = {r[0] for r in db.execute("SELECT task_id FROM tasks WHERE run_id = ? AND "
                                          "status = 'completed'", (resume,)).fetchall()}
    given, changed_inputs = _check_resumable(row, resume, plan, flow, serializer, inputs, force,
                                             old_prints, completed)
    if status == RunStatus.RUNNING.value:  # a run in progress: may its owner be displaced?
        store.check_owner(db, f"run {resume!r}", resume, row[5], row[6], row[7], force=force)
    kept, still_skipped, restored, seq = _restored(db, plan, resume, old_prints, changed_inputs)
    elements = _restored_elements(db, plan, resume, old_prints)
    if status == RunStatus.SUCCEEDED.value and len(kept) + len(still_skipped) == len(plan.steps):
        return RunJournal(store, flow, resume, 0, given, restored, seq, readonly=True,
                          types=plan.types, restored_elements=elements)
    check_inputs(given)
    inputs_codec, inputs_blob = encode_inputs(given, serializer, plan.types)
    host, pid, started = identity()
    stamp = now()
    session = db.execute("SELECT COALESCE(MAX(session), 0) + 1 FROM sessions WHERE "
                         "run_id = ?", (resume,)).fetchone()[0]
    db.execute("UPDATE sessions SET status = 'abandoned', ended = ? WHERE run_id = ? AND "
               "status = 'running'", (stamp, resume))
    # attempts a killed session left running never ended: they were abandoned with it
    db.execute("UPDATE attempts SET status = 'abandoned', ended = ? WHERE run_id = ? AND "
               "status = 'running'", (stamp, resume))
    # a first attempt in flight has no row of its own yet (its task's row stands for it):
    # it was the last session's, which is the one that was killed
    db.execute("INSERT INTO attempts (run_id, task_id, session, attempt, started, ended, status) "
               "SELECT run_id, task_id, ?, attempts, started, ?, 'abandoned' FROM tasks "
               "WHERE run_id = ? AND status = 'running' AND started IS NOT NULL "
               "ON CONFLICT DO NOTHING", (session - 1, stamp, resume))
    db.execute("UPDATE runs SET status = 'running', ended = NULL, owner_host = ?, "
               "owner_pid = ?, owner_start = ?, fingerprints = ?, inputs = ?, "
               "inputs_codec = ?, total_tasks = ?, plan_order = ?, plan_edges = ? "
               "WHERE run_id = ?",
               (host, pid, started, _fingerprints_json(plan, fingerprints), store.blob(inputs_blob),
                inputs_codec, len(plan.steps), _order(plan), _edges(plan), resume))
    db.execute("INSERT INTO sessions (run_id, session, host, pid, started, status) "
               "VALUES (?, ?, ?, ?, ?, 'running')", (resume, session, host, pid, stamp))
    stale = [(resume, t) for t in plan.index if t not in kept]
    # a first attempt that completed its task has no row of its own (the task's row stands
    # for it): it joins the history before the task's row goes
    db.executemany("INSERT INTO attempts (run_id, task_id, session, attempt, started, ended, "
                   "status) SELECT run_id, task_id, (SELECT COALESCE(MAX(s.session), 1) FROM "
                   "sessions s WHERE s.run_id = t.run_id AND s.started <= t.started), 1, "
                   "started, ended, 'completed' FROM tasks t WHERE run_id = ? AND task_id = ? "
                   "AND attempts = 1 AND status = 'completed' AND started IS NOT NULL "
                   "ON CONFLICT DO NOTHING", stale)
    db.executemany("DELETE FROM tasks WHERE run_id = ? AND task_id = ?", stale)
    return RunJournal(store, flow, resume, session, given, restored, seq,
                      claim=store.claim(db, resume, session), types=plan.types,
                      restored_elements=elements)


def _check_resumable(row: Any, resume: str, plan: Plan, flow: str, serializer: str,
                     inputs: Mapping[str, Any] | None, force: bool,
                     old_prints: Mapping[str, str],
                     completed: set[str]) -> tuple[dict[str, Any], set[str]]:
    """Refuse other inputs, or a change to a completed task, without ``force``; return the
    inputs to use and those that changed."""
    stored_flow, status, blob, codec = row[:4]
    where = f"run {resume!r}"
    stored_inputs = decode(blob, codec, "json" if codec == "json" else serializer,
                           f"{where}, its inputs", plan.types)  # JSON: always safe to read
    given = dict(stored_inputs if inputs is None else inputs)
    changed_inputs = set() if inputs is None else {
        k for k in set(given) | set(stored_inputs)  # by encoding: a NaN input equals itself
        if k not in given or k not in stored_inputs
        or not same_encoding(given[k], stored_inputs[k], plan.types)}
    if changed_inputs and not force:
        raise ResumeError(f"cannot resume {where} with other inputs "
                          f"({', '.join(map(repr, sorted(changed_inputs)))} differ): pass "
                          "the same inputs (or none, to reuse them), or force=True")
    changes = _changed_tasks(old_prints, fingerprints_of(plan), completed)
    if stored_flow != flow:
        changes["flow"] = [f"{stored_flow!r} -> {flow!r}"]
    if any(changes.values()) and not force:
        what = "; ".join(f"{kind}: {', '.join(map(str, items))}"
                         for kind, items in changes.items() if items)
        raise ResumeError(f"cannot resume {where}: the definition of tasks that completed "
                          f"changed ({what}); pass force=True to re-run them and what depends "
                          "on them (the completed tasks that did not change are kept)")
    return given, changed_inputs


def _restored(db: Any, plan: Plan, resume: str, old_prints: Mapping[str, str],
              changed_inputs: set[str]) -> tuple[set[str], set[str], list[Restored], int]:
    """The completed tasks that stay completed, the skipped ones that stay skipped (see
    `_kept_tasks`), the completed ones decoded, and the run's last sequence number."""
    where = f"run {resume!r}"
    rows = db.execute("SELECT task_id, result, delta, codec, attempts, started, ended, "
                      "duration FROM tasks WHERE run_id = ? AND status = 'completed' "
                      "ORDER BY seq", (resume,)).fetchall()
    skipped = {r[0] for r in db.execute("SELECT task_id FROM tasks WHERE run_id = ? AND "
                                        "status = 'skipped'", (resume,)).fetchall()}
    kept, still_skipped = _kept_tasks(plan, {r[0] for r in rows}, old_prints,
                                      fingerprints_of(plan), changed_inputs, skipped)
    steps = plan.index
    restored = []
    for task_id, result, delta, task_codec, attempts, t0, t1, duration in rows:
        if task_id not in kept:
            continue
        task_serializer = steps[task_id].serializer
        task_where = f"{where}, task {task_id!r}"
        value = decode(result, task_codec, task_serializer, task_where, plan.types)
        pairs = decode(delta, task_codec, task_serializer, task_where,
                       plan.types) if delta else []
        restored.append(Restored(task_id, value, [tuple(p) for p in pairs], attempts,
                                 t0, t1, duration))
    seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE run_id = ?",
                     (resume,)).fetchone()[0]
    return kept, still_skipped, restored, seq


def _restored_elements(db: Any, plan: Plan, resume: str, old_prints: Mapping[str, str]
                       ) -> dict[str, list[RestoredElement]]:
    """The completed elements of mapped tasks whose definition did not change, decoded (the
    runtime restores those mapped over the same values)."""
    mapped = {step.id: step for step in plan.steps if step.map_over}
    if not mapped:
        return {}
    new_prints = fingerprints_of(plan)
    found: dict[str, list[RestoredElement]] = {}
    rows = db.execute("SELECT task_id, idx, result, codec, attempts, started, ended, duration, "
                      "digest FROM elements WHERE run_id = ? AND status = 'completed' "
                      "ORDER BY task_id, idx", (resume,)).fetchall()
    for task_id, idx, result, codec, attempts, t0, t1, duration, digest in rows:
        step = mapped.get(task_id)
        if step is None or old_prints.get(task_id) != new_prints[task_id]:
            continue
        value = decode(result, codec, step.serializer,
                       f"run {resume!r}, task {task_id!r}, element {idx}", plan.types)
        found.setdefault(task_id, []).append(
            RestoredElement(task_id, idx, value, attempts, t0, t1, duration, digest))
    return found
