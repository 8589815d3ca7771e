"""Running part of a flow: compute only what a report needs.

The `sales` flow loads sales, computes totals per region, trains a (slow, simulated)
forecast model and writes two reports. The weekly summary only needs the totals, so it is
run with `targets=["summary_report"]`: its ancestors run, nothing else does (the forecast
tasks are absent from the result, not skipped), and the forecast's input `horizon` is not
needed.

    load_sales -> totals -> summary_report
              \\-> train_forecast -> forecast_report

Run it:   python examples/targets.py
CLI:      flowdsl run examples/targets.py:sales --target summary_report --set region=eu
"""

import sys
import time

from flowdsl import Flow, RunStatus

sales = Flow("sales")
RAN = []  # which handlers ran, in order


@sales.task(produces=["orders"])
def load_sales(region):
    RAN.append("load_sales")
    return {"orders": [("eu", 120.0), ("eu", 80.0), ("us", 200.0), (region, 15.5)]}


@sales.task
def totals(orders):
    RAN.append("totals")
    by_region = {}
    for where, amount in orders:
        by_region[where] = by_region.get(where, 0.0) + amount
    return by_region


@sales.task
def train_forecast(orders, horizon):
    RAN.append("train_forecast")
    time.sleep(0.2)  # stands in for an expensive model fit
    return {"next": sum(amount for _, amount in orders) / len(orders) * horizon}


@sales.task
def summary_report(totals, region):
    RAN.append("summary_report")
    return f"weekly sales in {region}: {totals.get(region, 0.0):.2f} (all: {sum(totals.values()):.2f})"


@sales.task
def forecast_report(train_forecast):
    RAN.append("forecast_report")
    return f"forecast: {train_forecast['next']:.2f}"


if __name__ == "__main__":
    plan = sales.compile(targets=["summary_report"])
    print(f"target plan: {' -> '.join(plan.order)}; inputs: {', '.join(plan.inputs)}")
    result = sales.run({"region": "eu"}, targets=["summary_report"])
    print(f"run {result.status.value}: ran {', '.join(RAN)}")
    print(result.results["summary_report"])
    absent = sorted(set(sales.compile().order) - set(result.tasks))
    print(f"not run (absent from the result): {', '.join(absent)}")
    sys.exit(0 if result.status is RunStatus.SUCCEEDED and "train_forecast" not in RAN else 1)
