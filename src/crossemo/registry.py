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
from .errors import ConfigError
from .features import FeatureSettings, labelled_rows, table_feature_set
from .metrics import evaluate
from .serving import ValencePipeline, signature
from .splits import Normalization, normalization_groups, speaker_keys, standardizer, validation_split

MODEL_NAME = "crossemo-valence"
CHAMPION = "champion"
SYNTHETIC = "synthetic-demo"  # the training_data tag of a model trained on `crossemo demo generate`'s corpora


def train_pipeline(
    table: pd.DataFrame,
    model,
    features: FeatureSettings,
    validation_fraction: float = 0.25,
    seed: int = 0,
    normalization: Normalization = Normalization.TRAIN,
) -> tuple[ValencePipeline, float]:
    """Fit on some speakers; the UAR on the held-out speakers is the recorded validation metric.
    `normalization` standardises the rows as the experiments do (train: the training rows' statistics;
    corpus / speaker: each group's own, label-free)."""
    made_with = table_feature_set(table)
    if made_with is not features.feature_set:  # the served model would extract another set than it learned
        raise ConfigError(
            f"the feature tables hold {made_with} features but features.feature_set is {features.feature_set}: "
            "run `dvc repro` to remake them, or set features.feature_set back"
        )
    table, x = labelled_rows(table)
    groups = speaker_keys(table).to_numpy()
    train, val = validation_split(table["valence"].to_numpy(), groups, validation_fraction, seed)
    mean, scale = standardizer(x[train])  # what standardises a lone served utterance
    pipeline = ValencePipeline(features, mean.astype(np.float32), scale, model, Normalization(normalization))
    x_all = pipeline.standardise(x, normalization_groups(table, pipeline.normalization))
    # A DBN pretrained on an unlabeled pool alone gets the training speakers' rows as that pool (label-free);
    # the validation speakers stay unseen, so the recorded UAR is a held-out one.
    pool = x_all[train] if model.needs_unlabeled_pool else None
    model.fit(x_all[train], table["valence"].to_numpy()[train], groups=groups[train], unlabeled=pool)
    uar = evaluate(table["valence"].to_numpy()[val], model.predict(x_all[val]))["uar"]
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


def register(
    pipeline: ValencePipeline,
    validation_uar: float,
    example: pd.DataFrame,
    run_params: dict,
    name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    corpora: list[str] = (),
    synthetic: bool = False,
) -> tuple[int, bool]:
    """(version, crowned): logs and registers the pipeline; moves the champion alias if it is better.
    The version is tagged with its training corpora and whether they were the synthetic demo ones."""
    tracking.configure(tracking_uri)
    client = MlflowClient()
    version = _next_version(client, name)
    experiment_id = tracking.experiment("crossemo-registry")
    origin = {"corpora": ",".join(corpora), "training_data": SYNTHETIC if synthetic else "corpora"}
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{name} v{version}",
        tags={**tracking.provenance_tags(list(corpora)), **origin},
    ):
        mlflow.log_params(tracking.flatten(run_params))
        mlflow.log_metric("validation_uar", validation_uar)
        with tempfile.TemporaryDirectory() as tmp:
            joblib.dump(pipeline, Path(tmp) / "pipeline.joblib")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"pipeline": str(Path(tmp) / "pipeline.joblib")},
                signature=signature(pipeline.features.feature_set),
                input_example=example,
                model_config={"model_version": version},
                registered_model_name=name,
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    "lightning>=2.6,<2.7",
                    "mlflow>=3.17,<4",
                    "opensmile>=2.6,<2.7",
                    "scikit-learn",
                    "pandas",
                    "soundfile",
                ],
            )
    registered = int(info.registered_model_version)
    for key, value in origin.items():
        client.set_model_version_tag(name, str(registered), key, value)
    best = champion_metric(client, name)
    crowned = best is None or validation_uar > best
    if crowned:
        client.set_registered_model_alias(name, CHAMPION, str(registered))
    return registered, crowned


def model_origin(model_uri: str, client: MlflowClient | None = None) -> str:
    """One line for whoever serves or uses a registered model: its version and training corpora,
    with a plain warning when those were the synthetic demo corpora."""
    client = client or MlflowClient()
    reference = model_uri.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (ValueError, mlflow.exceptions.MlflowException):
        return f"{model_uri}: no registry record of its training data"
    corpora = version.tags.get("corpora") or "unrecorded corpora"
    line = f"{version.name} v{version.version}, trained on {corpora}"
    if version.tags.get("training_data") == SYNTHETIC:
        line += (
            " -- WARNING: these are the SYNTHETIC demo corpora, not speech; its answers on real "
            "recordings mean nothing. Register a model trained on real corpora (see README: Real corpora)."
        )
    return line
