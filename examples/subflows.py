"""A sub-flow reused twice: one cleaning pipeline for two data sets.

`cleaning` is an ordinary flow (it runs on its own too): parse a CSV text, drop the rows
that fail validation, and summarise what is left. The `weekly` flow includes it twice,
once per data set, with different prefixes:

    orders.parse -> orders.validate -> orders.summary -> orders  \\
                                                                   report
    customers.parse -> customers.validate -> customers.summary -> customers /

Each include copies the sub-flow's tasks under its prefix (`orders.parse`, ...), maps the
sub-flow's input `csv_text` to a context key of the parent, and adds a task named like the
prefix whose result is {terminal task id: result}, which `report` reads by parameter name.

Run it:   python examples/subflows.py
Inspect:  flowdsl plan examples/subflows.py:weekly    (flowdsl graph ... draws the includes)
"""

import sys

from flowdsl import Flow, RunStatus

ORDERS_CSV = "id,amount\n1,20.5\n2,oops\n3,7.25\n4,12.0"
CUSTOMERS_CSV = "id,amount\n10,3.0\n11,-1\n12,4.5"

# -- the reusable sub-flow -------------------------------------------------------------------
cleaning = Flow("cleaning")


@cleaning.task(produces=["header"])
def parse(csv_text):
    """Split the text into a header and rows (`header` goes to the shared state)."""
    lines = [line.split(",") for line in csv_text.strip().splitlines()]
    return {"header": lines[0], "rows": lines[1:]}


@cleaning.task
def validate(parse, min_amount=0.0):
    """Keep the rows whose amount is a number of at least `min_amount`."""
    good, rejected = [], []
    for row_id, amount in parse["rows"]:
        try:
            value = float(amount)
        except ValueError:
            rejected.append(row_id)
            continue
        if value >= min_amount:
            good.append((row_id, value))
        else:
            rejected.append(row_id)
    return {"rows": good, "rejected": rejected}


@cleaning.task
def summary(validate, header):
    """Totals of what passed validation (`header` comes from parse, its producer)."""
    amounts = [value for _, value in validate["rows"]]
    return {"columns": header, "kept": len(amounts), "rejected": validate["rejected"],
            "total": round(sum(amounts), 2)}


# -- the parent flow: the sub-flow twice, then a report ------------------------------------
weekly = Flow("weekly")
weekly.include(cleaning, prefix="orders", inputs={"csv_text": "key:orders_csv"})
weekly.include(cleaning, prefix="customers", inputs={"csv_text": "key:customers_csv"})


@weekly.task
def report(orders, customers):
    """`orders` and `customers` are the gathering tasks: {terminal id: result}."""
    lines = []
    for name, gathered in (("orders", orders), ("customers", customers)):
        s = gathered["summary"]
        lines.append(f"{name}: {s['kept']} rows kept, total {s['total']}, "
                     f"rejected ids {', '.join(s['rejected']) or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    plan = weekly.compile()
    print(f"{len(plan.order)} tasks: {', '.join(plan.order)}")
    print(f"inputs: {', '.join(plan.inputs)}")
    result = weekly.run({"orders_csv": ORDERS_CSV, "customers_csv": CUSTOMERS_CSV,
                         "min_amount": 0.0})
    print(f"run {result.status.value}")
    print(result.results["report"])
    # the sub-flow is unchanged and still runs alone
    alone = cleaning.run({"csv_text": ORDERS_CSV})
    print(f"cleaning alone: {alone.results['summary']['kept']} rows kept")
    sys.exit(0 if result.status is RunStatus.SUCCEEDED else 1)
