"""Issue 11, reliability 5: shared-state writes made from threads a handler starts itself
(``threading.Thread``, a ``ThreadPoolExecutor``) belong to the task that started them: they are
in its delta, journalled, and replayed on resume. Where that task cannot be known (several
tasks in flight) the write is refused with `UntrackedWriteError` naming the key; never lost
silently."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading

from flowdsl import ConcurrentExecutor, Flow, RunStatus, TaskStatus, UntrackedWriteError

LONG = 5.0


def writes_from_its_threads(flow: Flow, fail_reader: list[bool]) -> None:
    @flow.task
    def spawn(context):
        state = context.shared_state
        thread = threading.Thread(target=state.__setitem__, args=("from_thread", 1))
        thread.start()
        thread.join()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pool.submit(state.update, {"from_pool": 2}).result()
            pool.submit(context.update_shared_state, "via_method", 3).result()
        return "spawned"

    @flow.task
    def reader(spawn, context):
        if fail_reader and fail_reader.pop():
            raise RuntimeError("not this time")
        return {k: context.shared_state.get(k) for k in ("from_thread", "from_pool", "via_method")}


EXPECTED = {"from_thread": 1, "from_pool": 2, "via_method": 3}


def test_writes_from_a_handlers_own_threads_are_its_delta(run_flow, flow):
    writes_from_its_threads(flow, [])

    result = run_flow(flow)

    assert result.results["reader"] == EXPECTED
    assert result.context.delta("spawn") == EXPECTED
    assert dict(result.context.shared_state) == EXPECTED


def test_writes_from_a_handlers_own_threads_survive_resume(tmp_path):
    path = str(tmp_path / "runs.db")
    flow = Flow("thread-writes-resume")
    writes_from_its_threads(flow, [True])

    first = flow.run(store=path, raise_on_failure=False)
    assert first.tasks["reader"].status is TaskStatus.FAILED

    again = Flow("thread-writes-resume")
    writes_from_its_threads(again, [])
    resumed = again.run(store=path, resume=first.run_id)

    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.tasks["spawn"].reason == "restored from the run store"
    assert resumed.results["reader"] == EXPECTED  # replayed from the stored delta
    assert dict(resumed.context.shared_state) == EXPECTED


def two_in_flight(flow: Flow, start_thread) -> threading.Event:
    """``writer`` and ``other`` are both in flight when ``writer``'s own thread writes."""
    both = threading.Barrier(2, timeout=LONG)
    written = threading.Event()

    @flow.task
    def writer(context):
        both.wait()
        try:
            outcome: list[BaseException] = []

            def work():
                try:
                    context.shared_state["k"] = "from a thread"
                except BaseException as exc:
                    outcome.append(exc)

            start_thread(work)
            if outcome:
                raise outcome[0]
        finally:
            written.set()
        return "done"

    @flow.task
    def other():
        both.wait()
        assert written.wait(LONG)
        return "other"

    return written


def test_an_unattributable_write_is_refused_naming_the_key():
    flow = Flow("thread-writes-refused")

    def plain_thread(work):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    two_in_flight(flow, plain_thread)

    result = flow.run(executor=ConcurrentExecutor(2), raise_on_failure=False)

    writer = result.tasks["writer"]
    assert writer.status is TaskStatus.FAILED
    assert isinstance(writer.error, UntrackedWriteError)
    assert writer.error.key == "k"
    assert "'k'" in str(writer.error) and "copy_context" in str(writer.error)
    assert set(writer.error.in_flight) == {"writer", "other"}
    assert "k" not in result.context.shared_state  # refused, not kept untracked
    assert result.tasks["other"].status is TaskStatus.COMPLETED


def test_a_thread_started_in_the_tasks_context_writes_for_it_under_concurrency():
    flow = Flow("thread-writes-copy-context")

    def thread_in_context(work):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(work,))
        thread.start()
        thread.join()

    two_in_flight(flow, thread_in_context)

    result = flow.run(executor=ConcurrentExecutor(2))

    assert result.context.delta("writer") == {"k": "from a thread"}
    assert result.context.delta("other") == {}


def test_outside_a_run_the_shared_state_is_a_plain_dict(flow):
    @flow.task
    def noop():
        return None

    result = flow.run()
    thread = threading.Thread(target=result.context.shared_state.__setitem__, args=("x", 1))
    thread.start()
    thread.join()
    assert result.context.shared_state["x"] == 1
