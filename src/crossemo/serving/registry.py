"""Train a valence pipeline, log it as an MLflow pyfunc model, register it, and crown champions.

A version is trained twice: once on most speakers, to measure it on the held-out ones (its
estimate), then on every labelled row (`refit`, as scikit-learn's `refit=True`): the registered
weights have seen every speaker. Registry aliases, not the deprecated stages: `champion` moves to
a new version when it beats the champion on rows neither of them trained on (`crossemo.serving.champion`).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow import MlflowClient

from crossemo.experiments import tracking
from crossemo.serving.adapting import log_registration
from crossemo.serving.champion import Comparison, compare_with_champion
from crossemo.serving.fitting import TrainedPipeline
from crossemo.serving.model_card import model_card
from crossemo.serving.pyfunc import signature
from crossemo.serving.versions import SPEAKERS_ARTIFACT, SYNTHETIC, resolve_version

MODEL_NAME = "crossemo-valence"
CHAMPION = "champion"


#: crossemo's dependencies that the served model does not import (the pipeline, tuning and cluster tools).
NOT_SERVED = ("dvc", "optuna", "dask", "psycopg", "pyarrow", "matplotlib")


def served_requirements() -> list[str]:
    """The logged model's pip requirements: crossemo's own (pyproject.toml), less those it does not serve with."""
    required = importlib.metadata.requires("crossemo") or []
    return [r for r in required if "extra ==" not in r and not r.lower().startswith(NOT_SERVED)]


@dataclass(frozen=True)
class Registration:
    version: int
    crowned: bool
    comparison: Comparison


def register(
    trained: TrainedPipeline,
    run_params: dict,
    name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    corpora: list[str] = (),
    synthetic: bool = False,
    crown: bool | None = None,
) -> Registration:
    """Log and register the pipeline; compare it with the champion on rows neither trained on and
    move the alias if it wins (or as `crown` says: True / False decide by hand). The comparison, the
    training data and the model card are recorded on the version."""
    tracking.configure(tracking_uri)
    client = MlflowClient()
    champion = resolve_version(f"models:/{name}@{CHAMPION}", client)
    comparison = compare_with_champion(client, champion, trained, synthetic, crown)
    adaptation = str((run_params.get("config") or {}).get("adaptation", "none"))
    origin = {
        "corpora": ",".join(corpora),
        "adaptation": adaptation,
        **({"adapted_to": ",".join(trained.target.corpora)} if trained.target is not None else {}),
        "training_data": SYNTHETIC if synthetic else "corpora",
        "feature_set": str(trained.pipeline.features.feature_set),
        "normalization": str(trained.pipeline.normalization),
        "lone_rows": str(trained.pipeline.lone_rows),
    }
    pipeline = trained.pipeline
    with mlflow.start_run(
        experiment_id=tracking.experiment("crossemo-registry"),
        run_name=f"{name} {run_params.get('model', '')}".strip(),
        tags={**tracking.provenance_tags(list(corpora)), **origin},
    ):
        mlflow.log_params(tracking.flatten(run_params))
        mlflow.log_metrics(
            {
                "heldout_uar": trained.heldout_uar,
                "heldout_uar_lone": trained.heldout_uar_lone,
                "heldout_rows": len(trained.heldout),
                "fit_rows": trained.fit_rows,
                "training_rows": trained.rows,
                **comparison.metrics(),
            }
        )
        mlflow.log_dict(trained.trained_speakers(), SPEAKERS_ARTIFACT)
        log_registration(run_params)
        with tempfile.TemporaryDirectory() as tmp:
            joblib.dump(pipeline, Path(tmp) / "pipeline.joblib")
            example = pd.DataFrame(trained.x[:1].astype("float64"), columns=pipeline.feature_names)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"pipeline": str(Path(tmp) / "pipeline.joblib")},
                signature=signature(pipeline.features.feature_set),
                input_example=example,
                # replaced when loaded: the registry assigns the version after logging (load_registered)
                model_config={"model_version": "unregistered"},
                registered_model_name=name,
                # self-contained: MLflow's own tools (a fresh environment, build-docker) import the
                # package from the model's copy of it, and install what it needs
                code_paths=[str(Path(__file__).parents[1])],  # the crossemo package
                pip_requirements=served_requirements(),
            )
    version = int(info.registered_model_version)  # the number MLflow assigned, never a guess
    tags = {**origin, "heldout_uar": f"{trained.heldout_uar:.4f}", **comparison.tags()}
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    card = model_card(
        name, version, trained, run_params.get("model", "model"), corpora, synthetic, comparison, adaptation
    )
    client.update_model_version(name, str(version), description=card)
    if comparison.crown:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    return Registration(version, comparison.crown, comparison)
