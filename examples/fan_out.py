"""Fan-out over files found at run time, then a gather (like Airflow's dynamic task mapping).

``find_files`` lists the CSV files of a folder when the run starts; ``count_rows`` is mapped
over that list (``map_over="path"``): one element per file, each with its own retries,
status and duration, up to four at once; ``gather`` reads the list of per-file results.
The example makes its own folder of small files, so it runs offline:

    python examples/fan_out.py
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from flowdsl import Flow

flow = Flow("fan_out")


@flow.task
def find_files(folder: str) -> list[str]:
    """The files to process, known only at run time."""
    return sorted(str(path) for path in Path(folder).glob("*.csv"))


@flow.task(map_over="path", bind={"path": "find_files"}, retries=2, retry_wait=0,
           produces=["rows"])
def count_rows(path: str) -> dict[str, int]:
    """One element per file: its number of data rows."""
    with open(path, newline="") as handle:
        return {"rows": sum(1 for _ in csv.DictReader(handle))}


@flow.task
def gather(find_files: list[str], rows: list[int]) -> dict[str, int]:
    """Join the per-file counts back to their files (element order is file order)."""
    return {Path(path).name: count for path, count in zip(find_files, rows)}


def make_folder(root: Path) -> None:
    """Three small CSV files of orders."""
    for name, count in (("north.csv", 3), ("south.csv", 5), ("west.csv", 2)):
        with open(root / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["order", "amount"])
            writer.writerows([[f"{name[:1]}{i}", i * 10] for i in range(count)])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        make_folder(Path(folder))
        result = flow.run({"folder": folder}, max_concurrency=4)
    print(f"run {result.status.value}: {result.summary['elements']} files counted by "
          f"{result.summary['total_tasks']} tasks")
    for element in result.tasks["count_rows"].elements or []:
        print(f"  element {element.index}: {element.status.value}, "
              f"{element.result['rows']} rows, {element.attempts} attempt(s)")
    for name, count in result.results["gather"].items():
        print(f"{name}: {count} rows")
    print(f"total: {sum(result.results['gather'].values())} rows")


if __name__ == "__main__":
    main()
