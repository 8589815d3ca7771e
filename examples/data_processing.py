"""A five-stage data pipeline written with flowdsl decorators.

This is the lesson's "sequential task orchestrator" example, rewritten so that each
stage is a plain function:

    load -> validate -> transform -> analyze -> report

A parameter named after another task receives that task's result (and makes it a
dependency); any other parameter is a context key. `produces=[...]` writes keys of the
returned mapping to the shared state, where downstream tasks pick them up by name.

Run it:   python examples/data_processing.py [DATA_SOURCE]
The `flow` object below is what the flowdsl CLI loads (examples/data_processing.py:flow).
"""

import asyncio
import sys
from pathlib import PurePath

from flowdsl import Flow, Priority, RunFailedError, TaskContext

FLOW_NAME = "data_processing"
flow = Flow(FLOW_NAME)

REQUIRED_COLUMNS = ("id", "name", "value")


# Stage 1: load. `data_source` is not a task id, so it is read from the context
# (the caller's input), falling back to the default when nobody supplies it.
@flow.task(priority=Priority.HIGH, produces=["columns"])
async def load(data_source="default.csv"):
    await asyncio.sleep(0.002)  # stands in for reading a file
    return {
        "dataset": PurePath(data_source).stem,
        "source": data_source,
        "record_count": 1000,
        "columns": ["id", "name", "value", "category", "timestamp"],  # -> shared state
    }


# Stage 2: validate. CRITICAL: if it fails, the whole run stops.
@flow.task(priority=Priority.CRITICAL)
def validate(load):
    if not load or "record_count" not in load:
        raise ValueError("validate needs the result of load")
    missing = [c for c in REQUIRED_COLUMNS if c not in load["columns"]]
    invalid = load["record_count"] // 50  # toy rule: 2% of the rows fail the checks
    return {
        "is_valid": not missing,
        "missing_columns": missing,
        "invalid_records": invalid,
        "valid_records": load["record_count"] - invalid,
    }


# Stage 3: transform. Reads both upstream results and refuses invalid data.
@flow.task(priority=Priority.HIGH, produces=["clean_records"])
def transform(load, validate):
    if not validate["is_valid"]:
        raise ValueError(
            f"refusing to transform {load['source']}: "
            f"missing columns {validate['missing_columns']}"
        )
    return {
        "output_table": f"{load['dataset']}_clean",
        "transformations": ["deduplicate", "normalise names", "parse timestamps"],
        "clean_records": validate["valid_records"],  # -> shared state
    }


# Stage 4: analyze. `clean_records` and `columns` are context keys: flowdsl hands
# over the values that transform and load produced.
@flow.task(priority=Priority.NORMAL, requires=["columns"])
async def analyze(transform, clean_records, columns):
    await asyncio.sleep(0.001)  # stands in for a query
    values = [(i * 37) % 101 for i in range(clean_records)]  # toy "value" column
    mean = sum(values) / len(values)
    stats = {"rows": len(values), "mean": round(mean, 2), "min": min(values), "max": max(values)}
    insights = [
        f"{clean_records} clean rows in {transform['output_table']}",
        f"{len(columns)} columns, 'value' averages {stats['mean']}",
    ]
    return {"statistics": stats, "insights": insights}


# Stage 5: report. A `context` parameter receives the live TaskContext.
@flow.task(priority=Priority.NORMAL)
def report(load, analyze, clean_records, context: TaskContext):
    quality_score = round(clean_records / load["record_count"], 3)
    sections = ["overview", "data quality", "statistics", "insights"]
    context.log_execution("report", "report_rendered", {"sections": len(sections)})
    return {
        "title": f"Report for {load['dataset']}",
        "sections": sections,
        "quality_score": quality_score,
        "insights": analyze["insights"],
    }


def describe(task_id, value):
    """One short line about a task's result, for the table."""
    if value is None:
        return "-"
    if task_id == "load":
        return f"{value['source']}: {value['record_count']} records, {len(value['columns'])} columns"
    if task_id == "validate":
        return f"valid={value['is_valid']}, {value['invalid_records']} invalid records"
    if task_id == "transform":
        return f"{value['clean_records']} rows -> {value['output_table']}"
    if task_id == "analyze":
        s = value["statistics"]
        return f"mean {s['mean']}, range {s['min']}..{s['max']}"
    if task_id == "report":
        return f"{len(value['sections'])} sections, quality score {value['quality_score']}"
    return repr(value)[:40]


def print_run(result):
    print(f"{'task':<10} {'status':<10} {'tries':>5} {'ms':>7}  result")
    print("-" * 72)
    for task_id in flow.compile().order:
        info = result.tasks[task_id]
        ms = (info.duration or 0.0) * 1000
        detail = describe(task_id, result.results.get(task_id))
        if info.reason or info.error:
            detail = str(info.reason or info.error)
        print(f"{task_id:<10} {info.status.value:<10} {info.attempts:>5} {ms:>7.2f}  {detail}")

    s = result.summary
    print("-" * 72)
    print(f"run {result.status.value}: {s['successful_tasks']}/{s['total_tasks']} tasks succeeded "
          f"({s['success_rate']:.0%}); failed {s['failed_tasks']}, "
          f"skipped {s['skipped_tasks']}, cancelled {s['cancelled_tasks']}")
    print(f"time in tasks           {s['total_execution_time'] * 1000:8.2f} ms "
          f"(average {s['average_task_duration'] * 1000:.2f} ms)")
    print(f"context preservation    {s['context_preservation_overhead'] * 1e6:8.1f} µs")
    print(f"task-switching overhead {s['orchestration_overhead_per_task'] * 1e6:8.1f} µs per task")
    print(f"context efficiency      {s['context_efficiency']:8.4f}")
    print(f"shared state keys       {sorted(result.context.shared_state)}")


if __name__ == "__main__":
    plan = flow.compile()
    print(f"flow {FLOW_NAME!r}: {' -> '.join(plan.order)}")
    initial = {"data_source": sys.argv[1]} if len(sys.argv) > 1 else {}
    print(f"input: {initial or 'none (load uses its default, default.csv)'}\n")

    try:
        result = flow.run(initial)
    except RunFailedError as exc:  # raised once every independent task has run
        print_run(exc.result)
        raise  # exit non-zero, naming each failed task and its error
    print_run(result)
    print("\n" + result.results["report"]["title"] + ":")
    for line in result.results["report"]["insights"]:
        print(f"  - {line}")
