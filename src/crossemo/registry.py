"""Train a valence pipeline, log it as an MLflow pyfunc model, register it, and crown champions.

Registry aliases, not the deprecated stages: a new version takes the alias `champion` when its
recorded validation UAR beats the current champion's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient

from . import tracking
from .features import FeatureSettings
from .metrics import evaluate
from .splits import speaker_keys
from .serving import ValencePipeline, signature
from .tuning import speaker_holdout

MODEL_NAME = "crossemo-valence"
CHAMPION = "champion"


def train_pipeline(table: pd.DataFrame, model, features: FeatureSettings, validation_fraction: float = 0.25,
                   seed: int = 0) -> tuple[ValencePipeline, float]:
    """Fit on some speakers; the UAR on the held-out speakers is the recorded validation metric."""
    from .experiments import feature_columns

    table = table[table["valence"] != "excluded"].reset_index(drop=True)
    x = table[feature_columns(table)].to_numpy(np.float32)
    train, val = speaker_holdout(table, validation_fraction, seed)
    mean, scale = x[train].mean(0), x[train].std(0)
    scale = np.where(scale > 0, scale, 1).astype(np.float32)
    groups = speaker_keys(table).to_numpy()
    model.fit((x[train] - mean) / scale, table["valence"].to_numpy()[train], groups=groups[train])
    pipeline = ValencePipeline(features, mean.astype(np.float32), scale, model)
    uar = evaluate(table["valence"].to_numpy()[val], pipeline.predict_features(x[val])["valence"])["uar"]
    return pipeline, uar


def _next_version(client: MlflowClient, name: str) -> int:
    versions = client.search_model_versions(f"name='{name}'")
    return 1 + max((int(v.version) for v in versions), default=0)


def champion_metric(client: MlflowClient, name: str = MODEL_NAME) -> float | None:
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return client.get_run(current.run_id).data.metrics.get("validation_uar")


def register(pipeline: ValencePipeline, validation_uar: float, example: pd.DataFrame, run_params: dict,
             name: str = MODEL_NAME, tracking_uri: str | None = None) -> tuple[int, bool]:
    """(version, crowned): logs and registers the pipeline; moves the champion alias if it is better."""
    tracking.configure(tracking_uri)
    client = MlflowClient()
    version = _next_version(client, name)
    experiment_id = tracking.experiment("crossemo-registry")
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name} v{version}",
                          tags=tracking.provenance_tags(run_params.get("corpora", []))):
        mlflow.log_params(tracking.flatten(run_params))
        mlflow.log_metric("validation_uar", validation_uar)
        with tempfile.TemporaryDirectory() as tmp:
            joblib.dump(pipeline, Path(tmp) / "pipeline.joblib")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(Path(__file__).with_name("pyfunc_model.py")), artifacts={"pipeline": str(Path(tmp) / "pipeline.joblib")},
                signature=signature(), input_example=example, model_config={"model_version": version},
                registered_model_name=name, pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}", "lightning>=2.6,<2.7", "mlflow>=3.17,<4",
                    "opensmile>=2.6,<2.7", "scikit-learn", "pandas", "soundfile"])
    registered = int(info.registered_model_version)
    best = champion_metric(client, name)
    crowned = best is None or validation_uar > best
    if crowned:
        client.set_registered_model_alias(name, CHAMPION, str(registered))
    return registered, crowned
