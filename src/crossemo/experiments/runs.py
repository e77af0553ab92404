"""The MLflow run lifecycle of a scenario: nested runs ended when their stage stops or their worker
is lost, the parent's summary metrics, and each unit's artifacts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd

from crossemo.experiments.fit_reuse import MODEL_ARTIFACT
from crossemo.experiments.protocols import (
    Split,
)


def end_unfinished_children(parent_id: str, stop: BaseException) -> None:
    """Nested runs that a stopped scenario leaves open (their worker was ended with it) are marked
    KILLED when the run was interrupted, FAILED when it crashed: never left RUNNING forever."""
    status = "KILLED" if isinstance(stop, KeyboardInterrupt) else "FAILED"
    client = mlflow.MlflowClient()
    for run in child_runs(client, parent_id, "attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, status)
    if status == "KILLED":
        mlflow.end_run("KILLED")  # the parent too; otherwise the context manager records FAILED


def end_lost_children(parent_id: str, kept: set[str]) -> None:
    """A unit whose worker died midway ran again elsewhere: the nested runs of the lost attempt
    (left RUNNING, or finished before the worker died) are marked KILLED and tagged, so that only the
    runs behind the results count."""
    client = mlflow.MlflowClient()
    for run in child_runs(client, parent_id):
        finished_pretraining = run.data.tags.get("stage") == "pretraining" and run.info.status == "FINISHED"
        if run.info.run_id not in kept and not finished_pretraining:
            client.set_tag(run.info.run_id, "lost_with_worker", "true")
            client.set_terminated(run.info.run_id, "KILLED")


def child_runs(client: mlflow.MlflowClient, parent_id: str, condition: str | None = None) -> list:
    """The parent run's nested runs (all of them: a scenario has thousands at most), optionally filtered."""
    query = f"tags.mlflow.parentRunId = '{parent_id}'" + (f" and {condition}" if condition else "")
    return client.search_runs([client.get_run(parent_id).info.experiment_id], query, max_results=50000)


def parent_metrics(results: pd.DataFrame) -> dict[str, float]:
    """Mean UAR and accuracy over a scenario's runs, per model and per model and target: the parent
    run's own columns in `mlflow ui`, so configurations compare without opening nested runs."""
    metrics = {}
    for model, runs in results.groupby("model"):
        metrics[f"uar/{model}"], metrics[f"accuracy/{model}"] = runs["uar"].mean(), runs["accuracy"].mean()
        for target, cells in runs.groupby("target"):
            metrics[f"uar/{model}/{target}"] = cells["uar"].mean()
    return {name: float(value) for name, value in metrics.items()}


def log_artifacts(meta: pd.DataFrame, labels, split: Split, predicted, proba, scores, model_to_store) -> None:
    """Predictions (beside the test rows' `meta` and true `labels`) and the confusion matrix; the
    model too, when given (None: not logged, or stored in the run that fitted it)."""
    from crossemo.experiments.report import confusion_figure

    predictions = meta.iloc[split.test].assign(
        true=labels[split.test], predicted=predicted, p_negative=proba[:, 0], p_positive=proba[:, 1]
    )
    with tempfile.TemporaryDirectory() as tmp:
        predictions.to_csv(Path(tmp) / "predictions.csv", index=False)
        figure = confusion_figure(np.array(scores["confusion"]), f"{split.source} -> {split.target}")
        figure.savefig(Path(tmp) / "confusion_matrix.png", dpi=80)
        if model_to_store is not None:
            joblib.dump(model_to_store, Path(tmp) / MODEL_ARTIFACT)
        mlflow.log_artifacts(tmp)
