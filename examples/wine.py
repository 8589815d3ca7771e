"""A small real-data pipeline with the cache and a resume after a fix.

scikit-learn's wine data set (178 wines, 13 measurements, 3 cultivars; it ships inside the
scikit-learn wheel, so this works offline) flows through pandas DataFrames: load, clean,
standardise, split, fit a classifier, profile each class, and report. The frames are stored
as Parquet (declared by the return annotations: no pickle), and they key the cache like any
other input.

    pip install -e ".[data]" scikit-learn
    python examples/wine.py [STORE]            # the whole story below, in a temporary store
    flowdsl run examples/wine.py               # the fixed flow, with the CLI (run it twice)

The story: the first run computes everything; the second takes every cacheable task from the
cache ("cached from run ..."); then a version of the flow whose report has a bug (a misspelt
column) fails, the bug is fixed, and the failed run is resumed **without --force**: only the
report had not completed, so changing it needs no force.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

from flowdsl import Flow, RunFailedError

#: Share of the wines held out to test the classifier (read by `split`: part of its
#: fingerprint, so changing it re-runs split and what follows instead of reusing the cache).
TEST_SHARE = 0.25
SEED = 7


def build(report_bug: bool = False) -> Flow:
    """The pipeline; ``report_bug`` gives a report task that fails (the bug to fix)."""
    flow = Flow("wine", cache=True)

    @flow.task
    def load() -> pd.DataFrame:
        from sklearn.datasets import load_wine

        frame = load_wine(as_frame=True).frame
        return frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})

    @flow.task
    def clean(load: pd.DataFrame) -> pd.DataFrame:
        frame = load.drop_duplicates().dropna()
        frame["phenol_ratio"] = frame["flavanoids"] / frame["total_phenols"]
        return frame

    @flow.task
    def standardised(clean: pd.DataFrame) -> pd.DataFrame:
        features = clean.drop(columns=["target"])
        scaled = (features - features.mean()) / features.std(ddof=0)
        scaled["target"] = clean["target"]
        return scaled

    @flow.task
    def split(standardised: pd.DataFrame) -> dict[str, list[int]]:
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(list(standardised.index), test_size=TEST_SHARE,
                                       random_state=SEED, stratify=standardised["target"])
        return {"train": sorted(train), "test": sorted(test)}

    @flow.task
    def model_scores(standardised: pd.DataFrame, split: dict[str, list[int]]) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression

        X, y = standardised.drop(columns=["target"]), standardised["target"]
        model = LogisticRegression(max_iter=1000)
        model.fit(X.loc[split["train"]], y.loc[split["train"]])
        return {"train_accuracy": round(float(model.score(X.loc[split["train"]],
                                                          y.loc[split["train"]])), 4),
                "test_accuracy": round(float(model.score(X.loc[split["test"]],
                                                         y.loc[split["test"]])), 4)}

    @flow.task
    def class_profile(clean: pd.DataFrame) -> pd.DataFrame:
        return clean.groupby("target")[["alcohol", "flavanoids", "color_intensity",
                                        "proline"]].mean().round(2)

    if report_bug:
        @flow.task(cache=False)
        def report(model_scores: dict[str, float], class_profile: pd.DataFrame) -> str:
            richest = class_profile["alchohol"].idxmax()  # the bug: a misspelt column
            return f"class {richest} is the strongest"
    else:
        @flow.task(cache=False)
        def report(model_scores: dict[str, float], class_profile: pd.DataFrame) -> str:
            richest = class_profile["alcohol"].idxmax()
            return (f"test accuracy {model_scores['test_accuracy']:.1%}; class {richest} has "
                    f"the most alcohol ({class_profile.loc[richest, 'alcohol']}%)")

    return flow


flow = build()  # what `flowdsl run examples/wine.py` runs


def show(title: str, result: object) -> None:
    print(f"== {title}: run {result.run_id} {result.status.value}, "  # type: ignore[attr-defined]
          f"{result.summary['cached_tasks']} cached")  # type: ignore[attr-defined]
    for task_id, task in result.tasks.items():  # type: ignore[attr-defined]
        why = task.reason or (f"{type(task.error).__name__}: {task.error}" if task.error
                              else f"ran in {task.duration * 1000:.1f} ms")
        print(f"   {task_id:<14} {task.status.value:<10} {why}")


def main(store: str) -> None:
    first = build().run(store=store)
    show("first run", first)
    second = build().run(store=store)
    show("second run", second)
    try:
        build(report_bug=True).run(store=store)
    except RunFailedError as exc:
        failed = exc.result
        show("a run with a bug in report", failed)
    resumed = build().run(store=store, resume=failed.run_id)  # the fix: no force needed
    show("the bug fixed, the failed run resumed", resumed)
    print(resumed.results["report"])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(str(Path(tmp) / "wine.db"))
