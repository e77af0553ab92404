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

from crossemo.errors import UserError
from crossemo.experiments import tracking
from crossemo.serving.champion import SPEAKERS_ARTIFACT, SYNTHETIC, Comparison, compare_with_champion
from crossemo.serving.fitting import TrainedPipeline
from crossemo.serving.model_card import model_card
from crossemo.serving.pipeline import ValencePipeline
from crossemo.serving.pyfunc import signature

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
    comparison = compare_with_champion(client, name, CHAMPION, trained, synthetic, crown)
    origin = {
        "corpora": ",".join(corpora),
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
    card = model_card(name, version, trained, run_params.get("model", "model"), corpora, synthetic, comparison)
    client.update_model_version(name, str(version), description=card)
    if comparison.crown:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    return Registration(version, comparison.crown, comparison)


def resolve_version(reference: str, client: MlflowClient | None = None):
    """The registry's ModelVersion for `models:/name@alias` or `models:/name/version`, else None."""
    client = client or MlflowClient()
    reference = reference.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, number = reference.rsplit("/", 1)
        return client.get_model_version(name, number)
    except (ValueError, mlflow.exceptions.MlflowException):
        return None


def load_registered(model_uri: str):
    """The pyfunc model at `model_uri`, told its registry version (its answers report it)."""
    found = resolve_version(model_uri)
    config = {"model_version": str(found.version)} if found is not None else None
    try:
        return mlflow.pyfunc.load_model(model_uri, model_config=config)
    except mlflow.exceptions.MlflowException as error:
        raise UserError(
            f"{model_uri}: {error.message.splitlines()[0]} (register one with `crossemo register`)"
        ) from None


def registered_pipeline(model_uri: str) -> ValencePipeline:
    return load_registered(model_uri).unwrap_python_model().pipeline


def model_summary(model_uri: str, lines: int = 4) -> str:
    """The first lines of the version's model card, for whoever serves or uses it; a plain warning
    when it was trained on the synthetic demo corpora (also for versions registered without a card)."""
    version = resolve_version(model_uri)
    if version is None:
        return f"{model_uri}: no registry record of its training data"
    head = [line for line in (version.description or "").splitlines() if line.strip()][:lines]
    if not head:
        corpora = version.tags.get("corpora") or "unrecorded corpora"
        head = [f"{version.name} v{version.version}, trained on {corpora}"]
    if version.tags.get("training_data") == SYNTHETIC and not any("SYNTHETIC" in line for line in head):
        head.append(SYNTHETIC_WARNING)
    return "\n".join(head)


SYNTHETIC_WARNING = (
    "WARNING: trained on the SYNTHETIC demo corpora, not speech; its answers on real recordings mean "
    "nothing. Register a model trained on real corpora (README: Real corpora)."
)
