"""Context accuracy: random DAGs of 25 and 1,000 tasks whose tasks ``require`` keys
produced upstream (see ``shapes.accuracy_dag``): each handler compares every value it
receives with the value its producer returned. Every round is checked; the share of
declared inputs delivered with the producer's value must be 100%."""

import pytest

from shapes import accuracy_dag

SIZES = [25, 1000]


@pytest.mark.parametrize("n", SIZES)
def test_flowdsl_accuracy(benchmark, record, n):
    from flowdsl import RunStatus

    dag = accuracy_dag(n)
    flow = dag.shape.build_flow()
    runs = []

    def run():
        result = flow.run(dag.shape.initial)
        runs.append(result.status)
        return result

    benchmark.group = f"accuracy-{n}"
    benchmark.pedantic(run, rounds=10 if n < 100 else 5, warmup_rounds=1)

    record(f"accuracy-{n}", "flowdsl", n, accuracy=dag.share, checks=dag.expected_checks,
           checked_in_all_rounds=dag.tally["checked"], edges=dag.shape.edges)
    assert all(status == RunStatus.SUCCEEDED for status in runs), runs
    assert dag.tally["checked"] == dag.expected_checks * len(runs), \
        "some handlers did not run (or ran twice)"
    share = dag.share
    assert share == 1.0, f"accuracy {share:.4%}; first mismatches {dag.mismatches[:5]}"
