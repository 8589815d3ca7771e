"""The seed's five-stage data pipeline, run on a Dask cluster.

The flow is the same as for a local run; only the executor changes:

    result = flow.run({...}, executor=flowdsl.DaskExecutor())

`DaskExecutor()` with no argument starts a `LocalCluster` for the run and closes it
afterwards; pass a `distributed.Client` or a scheduler address ("tcp://host:8786") to use a
cluster you already have. The driver (this process) keeps the plan, the context, retries and
timeouts; each handler runs on a worker process. Each handler here returns the address of the
worker that ran it, so the output shows where every stage ran.

Needs the extra:   pip install "flowdsl[dask]"
Run it:            python examples/dask_pipeline.py

The `if __name__ == "__main__":` guard matters: Dask starts its worker processes with
"spawn", which imports this file again in each of them.
"""

import random
import statistics

from distributed import get_worker

import flowdsl
from flowdsl import Flow, Priority, TaskContext

flow = Flow("dask_pipeline")


def _where() -> str:
    return get_worker().address


@flow.task(priority=Priority.HIGH, retries=2, retry_wait=0.1)
def load_data(data_source="default.csv"):
    """Load (simulated): 20,000 records from the data source."""
    rng = random.Random(7)
    categories = ["books", "games", "music", "tools"]
    rows = [{"id": i, "value": round(rng.gauss(50, 15), 2), "category": rng.choice(categories)}
            for i in range(20_000)]
    for i in range(0, len(rows), 97):  # a few broken records
        rows[i]["value"] = None
    return {"dataset": data_source.rsplit(".", 1)[0], "records": len(rows),
            "columns": ["id", "value", "category"], "rows": rows, "worker": _where()}


@flow.task(priority=Priority.CRITICAL)
def validate_data(load_data):
    """Validate: critical, so its failure stops the run."""
    if not load_data or not load_data.get("rows"):
        raise ValueError("no data to validate: load_data produced nothing")
    invalid = sum(1 for row in load_data["rows"] if row["value"] is None)
    return {"is_valid": invalid < load_data["records"] * 0.05, "invalid_records": invalid,
            "valid_records": load_data["records"] - invalid, "worker": _where()}


@flow.task(priority=Priority.HIGH, produces=["transformed_records"])
def transform_data(load_data, validate_data):
    """Transform: refuses invalid data; drops broken records, normalises values."""
    if not validate_data["is_valid"]:
        raise ValueError(f"refusing to transform invalid data from {load_data['dataset']}")
    rows = [{**row, "value": row["value"] / 100} for row in load_data["rows"]
            if row["value"] is not None]
    return {"rows": rows, "transformed_records": len(rows),
            "operations": ["drop_invalid", "normalise"], "worker": _where()}


@flow.task(priority=Priority.NORMAL)
def analyze_data(transform_data, context: TaskContext):
    """Analyze: statistics per category, and insights. It takes the context (a copy built
    on the driver); what it logs comes back to the driver's execution trace."""
    by_category = {}
    for row in transform_data["rows"]:
        by_category.setdefault(row["category"], []).append(row["value"])
    stats = {name: {"count": len(values), "mean": round(statistics.fmean(values), 4)}
             for name, values in sorted(by_category.items())}
    top = max(stats, key=lambda name: stats[name]["mean"])
    context.log_execution("analyze_data", "analysis_note", {"categories": len(stats)})
    return {"statistics": stats, "insights": [f"{top} has the highest mean value",
                                              f"{len(stats)} categories analysed"],
            "worker": _where()}


@flow.task(priority=Priority.NORMAL)
def generate_report(analyze_data, validate_data, transformed_records):
    """Report: the sections and a quality score."""
    total = validate_data["valid_records"] + validate_data["invalid_records"]
    return {"sections": ["summary", "statistics", "insights", "recommendations"],
            "quality_score": round(transformed_records / total, 3),
            "insights": analyze_data["insights"], "worker": _where()}


def main() -> int:
    result = flow.run({"data_source": "sales_2024.csv"}, executor=flowdsl.DaskExecutor())

    print(f"Run {result.run_id}: {result.status.value} on Dask")
    print(f"{'task':<16} {'status':<10} {'attempts':>8} {'seconds':>8}  worker")
    for task_id, task in result.tasks.items():
        value = result.results.get(task_id)
        worker = value.get("worker", "-") if isinstance(value, dict) else "-"
        duration = f"{task.duration:.3f}" if task.duration is not None else "-"
        print(f"{task_id:<16} {task.status.value:<10} {task.attempts:>8} {duration:>8}  {worker}")

    workers = {value["worker"] for value in result.results.values() if isinstance(value, dict)}
    print(f"\n{len(workers)} worker(s) ran the tasks: {', '.join(sorted(workers))}")
    notes = [e for e in result.context.execution_trace if e["action"] == "analysis_note"]
    if notes:
        print(f"logged on a worker, seen on the driver: {notes[0]['details']}")
    report = result.results.get("generate_report")
    if report:
        print(f"Report: quality score {report['quality_score']}; "
              f"{'; '.join(report['insights'])}")
    summary = result.summary
    print(f"tasks: {summary['successful_tasks']}/{summary['total_tasks']} succeeded, "
          f"{summary['total_execution_time']:.3f} s in tasks")
    return 0  # a failed run raised RunFailedError from flow.run(), naming the failed tasks


if __name__ == "__main__":
    raise SystemExit(main())
