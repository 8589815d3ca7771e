"""A branch with a join and a clean-up, like Airflow's branch operator.

A nightly job checks how much new data arrived. A small batch is loaded incrementally, a large
one triggers a full rebuild: each branch is gated by `run_if`, so exactly one of them runs and
the other is SKIPPED with reason "condition false" (its downstream task too). `publish` joins
the branches with `trigger="none_failed"`: it runs when no upstream task failed, whichever
branch was skipped, and receives None (or its parameter's default) for the skipped one. The
clean-up runs with `trigger="all_done"`: whatever happened before, even a failure.

                 /-> incremental (run_if small) -------------\\
    check_volume                                               -> publish -> cleanup
                 \\-> full_rebuild (run_if large) -> reindex -/   (none_failed) (all_done)

A run whose only non-completed tasks were skipped by a false condition is SUCCEEDED; the
third run below gets bad input: `check_volume` fails, everything after it is SKIPPED except
the clean-up, and the run is FAILED.

Run it:   python examples/branching.py
Inspect:  flowdsl plan examples/branching.py:nightly  (conditional tasks and triggers marked)
"""

import sys

from flowdsl import Flow, RunStatus

nightly = Flow("nightly")
LARGE = 1_000  # rows: from this size on, rebuild everything


@nightly.task
def check_volume(new_rows):
    """How many rows arrived since the last run (an input of the flow)."""
    return len(new_rows)


def is_small(check_volume):
    return check_volume < LARGE


def is_large(check_volume):
    return check_volume >= LARGE


@nightly.task(run_if=is_small)
def incremental(new_rows):
    """Append the new rows only."""
    return {"mode": "incremental", "rows": len(new_rows)}


@nightly.task(run_if=is_large)
def full_rebuild(new_rows):
    """Rebuild the table from scratch."""
    return {"mode": "full", "rows": len(new_rows)}


@nightly.task
def reindex(full_rebuild):
    """Only after a full rebuild (skipped with it otherwise)."""
    return f"reindexed {full_rebuild['rows']} rows"


@nightly.task(trigger="none_failed")
def publish(incremental=None, reindex=None, full_rebuild=None):
    """The join: runs when no upstream failed; a skipped branch gives None."""
    done = incremental or full_rebuild
    extra = f" ({reindex})" if reindex else ""
    return f"published the {done['mode']} load of {done['rows']} rows{extra}"


@nightly.task(trigger="all_done", depends_on=["publish"])
def cleanup():
    """Runs whatever happened upstream: remove temporary files, send a notification."""
    return "temporary files removed"


def show(result):
    print(f"run {result.status.value}")
    for task_id in nightly.compile().order:
        task = result.tasks[task_id]
        why = task.reason or (task.error and f"{type(task.error).__name__}: {task.error}")
        why = f" ({why})" if why else ""
        print(f"  {task_id:13} {task.status.value}{why}")
    print(f"  -> {result.results.get('publish', 'nothing published')}; "
          f"cleanup: {result.results.get('cleanup', 'did not run')}")


if __name__ == "__main__":
    small = nightly.run({"new_rows": list(range(120))})
    show(small)
    large = nightly.run({"new_rows": list(range(5_000))})
    show(large)
    # bad input: check_volume fails, both branches and the join are skipped, the clean-up runs
    broken = nightly.run({"new_rows": None}, raise_on_failure=False)
    show(broken)
    ok = (small.status is large.status is RunStatus.SUCCEEDED
          and broken.status is RunStatus.FAILED)
    sys.exit(0 if ok else 1)
