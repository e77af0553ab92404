"""Train a valence pipeline, log it as an MLflow pyfunc model, register it, and crown champions.

A version is trained twice: once on most speakers, to measure it on the held-out ones (its
estimate), then on every labelled row (`refit`, as scikit-learn's `refit=True`): the registered
weights have seen every speaker. Registry aliases, not the deprecated stages: `champion` moves to
a new version when it beats the champion on rows neither of them trained on (`crossemo.champion`).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from . import tracking
from .champion import SPEAKERS_ARTIFACT, SYNTHETIC, Comparison, compare_with_champion
from .errors import ConfigError, UserError
from .features import FeatureSettings, labelled_rows, table_feature_set
from .metrics import evaluate
from .model_card import model_card
from .serving import ValencePipeline, signature
from .splits import (
    LoneRows,
    Normalization,
    normalization_groups,
    speaker_keys,
    standardise_groups,
    standardizer,
    validation_split,
)

MODEL_NAME = "crossemo-valence"
CHAMPION = "champion"


@dataclass(frozen=True)
class TrainedPipeline:
    """A pipeline ready to register, with the evidence for it."""

    pipeline: ValencePipeline  # what is registered: refitted on every labelled row when refit
    validation: ValencePipeline  # fitted on the training speakers alone
    table: pd.DataFrame  # the labelled rows (corpus, speaker, valence, ...)
    x: np.ndarray  # their raw features
    heldout: np.ndarray  # positions of the held-out speakers' rows
    heldout_uar: float  # `validation` on them, as served with their speaker column
    heldout_uar_lone: float  # the same, one utterance at a time (no speaker column)
    fit_rows: int  # rows `validation` trained on
    rows: int  # rows `pipeline` trained on

    @property
    def keys(self) -> np.ndarray:
        return speaker_keys(self.table).to_numpy()

    def trained_speakers(self) -> dict[str, int]:
        """{corpus/speaker: utterances} of the registered model's training rows."""
        trained = np.arange(len(self.table)) if self.rows == len(self.table) else self._fit_positions()
        return {str(k): int(n) for k, n in pd.Series(self.keys[trained]).value_counts().sort_index().items()}

    def _fit_positions(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.table)), self.heldout)


def served_uar(pipeline: ValencePipeline, x: np.ndarray, y: np.ndarray, speakers=None) -> float:
    """UAR of the pipeline's served answers: with a speaker column (rows of one speaker standardised
    together) or without one (every row alone)."""
    return evaluate(y, pipeline.score(x, speakers)["valence"].to_numpy())["uar"]


def fresh(model):
    """An unfitted copy with the same hyperparameters (and seed)."""
    return type(model)(**model.get_params())


def fit_pipeline(
    model,
    table: pd.DataFrame,
    x: np.ndarray,
    features: FeatureSettings,
    normalization: Normalization,
    lone_rows: LoneRows,
) -> ValencePipeline:
    """Fit `model` on these rows standardised as `normalization` says, and (LoneRows.OWN_MODEL) a
    copy of it on the same rows standardised with their pooled statistics, for lone served rows."""
    mean, scale = standardizer(x)
    pipeline = ValencePipeline(features, mean.astype(np.float32), scale, model, normalization)
    groups = normalization_groups(table, normalization)
    _fit(model, pipeline.standardise(x) if groups is None else standardise_groups(x, groups), table)
    if lone_rows is LoneRows.OWN_MODEL and normalization is not Normalization.TRAIN:
        pipeline.lone_model = _fit(fresh(model), pipeline.standardise(x), table)
    return pipeline


def _fit(model, x: np.ndarray, table: pd.DataFrame):
    # A DBN pretrained on an unlabeled pool alone gets its training rows as that pool (label-free).
    pool = x if model.needs_unlabeled_pool else None
    return model.fit(x, table["valence"].to_numpy(), groups=speaker_keys(table).to_numpy(), unlabeled=pool)


def train_pipeline(
    table: pd.DataFrame,
    model,
    features: FeatureSettings,
    validation_fraction: float = 0.25,
    seed: int = 0,
    normalization: Normalization = Normalization.TRAIN,
    lone_rows: LoneRows = LoneRows.POOLED,
    refit: bool = True,
) -> TrainedPipeline:
    """Fit on most speakers and score the held-out ones as a client would be served; then, with
    `refit`, fit a fresh copy of `model` on every labelled row: the one that is registered."""
    made_with = table_feature_set(table)
    if made_with is not features.feature_set:  # the served model would extract another set than it learned
        raise ConfigError(
            f"the feature tables hold {made_with} features but features.feature_set is {features.feature_set}: "
            "run `dvc repro` to remake them, or set features.feature_set back"
        )
    table, x = labelled_rows(table)
    if table.empty:
        raise UserError("no utterance with a valence label to train on (check the corpora's valence mappings)")
    normalization, lone_rows = Normalization(normalization), LoneRows(lone_rows)
    y, keys = table["valence"].to_numpy(), speaker_keys(table).to_numpy()
    train, held = validation_split(y, keys, validation_fraction, seed)
    validation = fit_pipeline(
        fresh(model), table.iloc[train].reset_index(drop=True), x[train], features, normalization, lone_rows
    )
    uar = served_uar(validation, x[held], y[held], keys[held])
    uar_lone = served_uar(validation, x[held], y[held])
    final = fit_pipeline(fresh(model), table, x, features, normalization, lone_rows) if refit else validation
    return TrainedPipeline(
        final, validation, table, x, np.sort(held), uar, uar_lone, len(train), len(x) if refit else len(train)
    )


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
                code_paths=[str(Path(__file__).parent)],
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
