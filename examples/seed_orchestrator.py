"""The lesson's orchestrator example, in its original style, run by flowdsl.

The seed program registered async handlers that take a single `task_input` dict with
`add_task(task_id, name, handler, dependencies, priority, ...)`. flowdsl keeps that
imperative form: a handler whose only parameter is `task_input` receives

    task_input["<dependency>_result"]   the result of each dependency
    task_input["<required key>"]        each of its context_requirements
    task_input["context"], ["shared_state"], ["previous_results"], ["idempotency_key"]

and each key listed in `output_context_keys` is taken from the returned mapping and
written to the shared state.

Like the seed, it is driven by `await flow.execute_sequence(initial)`, which returns the run's
`TaskContext` (the summary in `context.metadata["execution_summary"]`) and does not raise
for a failed run; `flow.run()` is the everyday form.

Run it:   python examples/seed_orchestrator.py
"""

import asyncio

from flowdsl import Flow, TaskPriority


async def load_data(task_input):
    source = task_input["data_source"]  # a context requirement
    await asyncio.sleep(0.002)  # simulated I/O
    columns = ["id", "name", "value", "category", "timestamp"]
    return {
        "dataset": source.rsplit(".", 1)[0],
        "records": 1000,
        "columns": columns,
        "schema": {"columns": columns, "primary_key": "id"},  # -> shared state
    }


async def validate_data(task_input):
    loaded = task_input.get("load_data_result")
    if not loaded:
        raise ValueError("no data to validate: load_data produced nothing")
    await asyncio.sleep(0.001)
    invalid = loaded["records"] // 40
    return {"is_valid": True, "invalid_records": invalid, "valid_records": loaded["records"] - invalid}


async def transform_data(task_input):
    loaded = task_input["load_data_result"]
    validation = task_input["validate_data_result"]
    if not validation["is_valid"]:
        raise ValueError(f"refusing to transform invalid data from {loaded['dataset']}")
    await asyncio.sleep(0.001)
    return {
        "transformed_records": validation["valid_records"],  # -> shared state
        "operations": ["normalise", "enrich", "deduplicate"],
    }


async def analyze_data(task_input):
    rows = task_input["transformed_records"]  # required key, produced by transform_data
    schema = task_input["schema"]  # required key, produced by load_data
    await asyncio.sleep(0.001)
    return {
        "statistics": {"rows": rows, "columns": len(schema["columns"]), "mean_value": 50.2},
        "insights": [f"{rows} rows ready for reporting", "value is evenly spread"],
    }


async def generate_report(task_input):
    analysis = task_input["analyze_data_result"]
    transformed = task_input["transform_data_result"]
    loaded_so_far = len(task_input["previous_results"])  # the seed's context history
    quality = round(transformed["transformed_records"] / 1000, 3)
    return {
        "sections": ["summary", "statistics", "insights", "recommendations"],
        "quality_score": quality,
        "based_on_tasks": loaded_so_far,
        "insights": analysis["insights"],
    }


flow = Flow("seed_orchestrator")
flow.add_task("load_data", "Load Data", load_data,
              priority=TaskPriority.HIGH,
              context_requirements=["data_source"],
              output_context_keys=["schema"])
flow.add_task("validate_data", "Validate Data", validate_data,
              dependencies=["load_data"],
              priority=TaskPriority.CRITICAL)
flow.add_task("transform_data", "Transform Data", transform_data,
              dependencies=["load_data", "validate_data"],
              priority=TaskPriority.HIGH,
              output_context_keys=["transformed_records"])
flow.add_task("analyze_data", "Analyze Data", analyze_data,
              dependencies=["transform_data"],
              priority=TaskPriority.NORMAL,
              context_requirements=["transformed_records", "schema"])
flow.add_task("generate_report", "Generate Report", generate_report,
              dependencies=["analyze_data", "transform_data"],
              priority=TaskPriority.NORMAL)


async def main():
    # the seed program's call: run the sequence, get its TaskContext back
    context = await flow.execute_sequence({"data_source": "sales_2024.csv",
                                           "user_id": "analyst-7"})

    summary = context.metadata["execution_summary"]
    print(f"Execution summary ({summary['status']}):")
    for key, value in summary.items():
        shown = f"{value:.6f}" if isinstance(value, float) else value
        print(f"  {key:<32} {shown}")

    report = context.get_result("generate_report")
    if report:
        print(f"\nReport: quality score {report['quality_score']}, "
              f"sections {', '.join(report['sections'])}")

    metrics = flow.get_execution_metrics()
    print("\nExecution metrics:")
    for key, value in metrics["execution_stats"].items():
        shown = f"{value:.6f}" if isinstance(value, float) else value
        print(f"  {key:<32} {shown}")
    print("  task performance (last durations, ms):")
    for task_id, durations in metrics["task_performance"].items():
        print(f"    {task_id:<18} {', '.join(f'{d * 1000:.2f}' for d in durations)}")
    print(f"  context efficiency               {metrics['context_efficiency']:.6f}")
    print(f"  current context size             {metrics['current_context_size']}")
    print(f"  task status distribution         {metrics['task_status_distribution']}")

    failed = [e["task_id"] for e in context.execution_trace if e["action"] == "task_failed"]
    return 1 if failed else 0  # execute_sequence does not raise: the seed's didn't


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
