"""A pipeline whose last step fails until its service is "back": resume it, don't re-run it.

    flowdsl run examples/resume_demo.py                     # publish fails: exit 1
    PUBLISH_SERVICE_UP=1 flowdsl run examples/resume_demo.py --resume RUN_ID

The resume restores fetch, clean and summarize from the run store (their results and their
context changes) and runs only publish.
"""

import os
import time

from flowdsl import Flow, Priority, RunFailedError

flow = Flow("resume_demo")


@flow.task(priority=Priority.HIGH)
def fetch(source="orders.csv"):
    time.sleep(0.2)  # stands for a slow download
    return [{"id": i, "amount": 10 * i} for i in range(1, 6)]


@flow.task(produces=["row_count"])
def clean(fetch):
    rows = [row for row in fetch if row["amount"] > 10]
    return {"rows": rows, "row_count": len(rows)}


@flow.task
def summarize(clean, row_count):
    return {"rows": row_count, "total": sum(row["amount"] for row in clean["rows"])}


@flow.task(retries=1, retry_wait=0.1)
def publish(summarize, task_input):
    if not os.environ.get("PUBLISH_SERVICE_UP"):
        raise ConnectionError("report service unavailable (set PUBLISH_SERVICE_UP=1)")
    return f"published {summarize} (idempotency key {task_input['idempotency_key']})"


if __name__ == "__main__":
    try:
        result = flow.run()
    except RunFailedError as exc:  # publish failed; the other tasks ran (exc.result has them)
        print(exc)
        print("completed:", ", ".join(t for t, r in exc.result.tasks.items()
                                      if r.status.value == "completed"))
    else:
        print(result.status.value)
