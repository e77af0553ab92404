"""The tables of ../seed-ensembles.md: each network's three seeds averaged into one prediction, against
the mean of the seeds' own UARs, in every cell whose three runs tested the same utterances.

    python reports/real-corpora/seed-ensembles/tables.py PROJECT     # computes ensembles.csv
    python reports/real-corpora/seed-ensembles/tables.py             # prints the tables from it

PROJECT is the `make real` project whose MLflow store holds the study's runs (../*.parquet name them
by run_id): each run's predictions.csv gives p_positive per utterance. Only the neural networks are
averaged: their labels are the argmax of their probabilities, so averaging probabilities is their own
decision rule; an SVM labels by its class-balanced decision function, which its calibrated
probabilities do not reproduce. Within-corpus random splits and target fractions draw other test
utterances per seed: those cells are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.report import load_results

HERE = Path(__file__).parent
NETWORKS = ("dbn_best", "dbn_paper", "mlp_paper")
CELL = ["scenario", "protocol", "model", "source", "target", "fold", "fraction"]


def study_runs(project: Path) -> pd.DataFrame:
    """The networks' runs of the study reported in ../: per scenario, the latest parent run whose
    children's UARs are exactly those of ../<scenario>.parquet (the project may hold other runs)."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    reported = load_results(HERE.parent)
    reported = reported[reported["model"].isin(NETWORKS)]
    found = []
    for scenario, rows in reported.groupby("scenario"):
        runs = mlflow.search_runs(experiment_names=[f"crossemo-{scenario}"], order_by=["start_time DESC"])
        runs = runs[runs["tags.model"].isin(NETWORKS) & runs["metrics.uar"].notna()]
        for _, children in runs.groupby("tags.mlflow.parentRunId", sort=False):
            if len(children) == len(rows) and np.allclose(np.sort(children["metrics.uar"]), np.sort(rows["uar"])):
                found.append(children.assign(scenario=scenario))
                break
        else:
            raise SystemExit(f"{project} holds no {scenario} study whose runs match ../{scenario}.parquet")
    return pd.concat(found, ignore_index=True)


def predictions(run: pd.Series) -> pd.DataFrame:
    path = Path(run["artifact_uri"].removeprefix("file://")) / "predictions.csv"
    return pd.read_csv(path).set_index(["corpus", "utterance_id"])


def ensembles(project: Path) -> pd.DataFrame:
    runs = study_runs(project)
    cell = ["scenario", "tags.protocol", "tags.model", "tags.source", "tags.target", "tags.fold", "tags.fraction"]
    rows = []
    for key, seeds in runs.groupby(cell):
        tested = [predictions(run) for _, run in seeds.iterrows()]
        if len(tested) < 2 or any(not t.index.equals(tested[0].index) for t in tested):
            continue  # another test set per seed: nothing to average
        true = tested[0]["true"].to_numpy()
        mean_p = np.mean([t["p_positive"].to_numpy() for t in tested], axis=0)
        rows.append(
            {
                **dict(zip(CELL, key)),
                "seeds": len(tested),
                "seed_mean": seeds["metrics.uar"].mean(),
                "seed_ensemble": valence_scores(true, np.where(mean_p > 0.5, "positive", "negative"))["uar"],
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    if len(sys.argv) > 1:
        ensembles(Path(sys.argv[1])).to_csv(HERE / "ensembles.csv", index=False)
    table = pd.read_csv(HERE / "ensembles.csv")
    table[["seed_mean", "seed_ensemble"]] *= 100
    table["gain"] = table["seed_ensemble"] - table["seed_mean"]
    scenario = ["scenario", "protocol"]
    print("## Mean UAR (%) per scenario over the cells averaged: each network's seeds (their mean UAR ->")
    print("the UAR of their averaged probabilities), and the class-balanced SVM on the same cells\n")
    means = table.groupby([*scenario, "model"])[["seed_mean", "seed_ensemble"]].mean().round(1)
    arrows = (means["seed_mean"].astype(str) + " -> " + means["seed_ensemble"].astype(str)).unstack("model")
    arrows.insert(0, "cells", table.groupby(scenario)["target"].size() // table["model"].nunique())
    arrows["svm"] = svm_on(table).groupby(scenario)["uar"].mean().round(1)
    print(arrows.to_markdown())
    print("\n## Cells where the averaged prediction's UAR is above the seeds' mean\n")
    higher = table.assign(higher=table["gain"] > 0).groupby("model")["higher"]
    print(
        pd.DataFrame(
            {
                "higher": higher.sum(),
                "cells": higher.size(),
                "mean gain": table.groupby("model")["gain"].mean().round(2),
            }
        ).to_markdown()
    )


def svm_on(table: pd.DataFrame) -> pd.DataFrame:
    """The svm's UAR (%, mean over seeds) in each of the averaged cells."""
    reported = load_results(HERE.parent)
    svm = reported[reported["model"] == "svm"].assign(uar=lambda r: r["uar"] * 100)
    keys = ["scenario", "protocol", "source", "target", "fold", "fraction"]
    svm = svm.groupby(keys, as_index=False)["uar"].mean()
    cells = table[table["model"] == NETWORKS[0]][keys]
    return cells.merge(svm, on=keys, how="left")


if __name__ == "__main__":
    main()
