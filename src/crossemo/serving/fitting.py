"""Training the served pipeline: a fit on most speakers, scored on the others as a client is served
(the version's estimate), then a refit on every labelled row (`registry.refit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crossemo.data.features import FeatureSettings, labelled_rows, table_feature_set
from crossemo.data.speakers import speaker_keys
from crossemo.errors import ConfigError, UserError
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import (
    LoneRows,
    Normalization,
    Standardiser,
    normalization_groups,
)
from crossemo.models.estimator import ValenceModel
from crossemo.models.validation import validation_split
from crossemo.serving.adapting import TargetRows
from crossemo.serving.pipeline import ValencePipeline


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
    target: TargetRows | None = None  # the corpora it was adapted to (--adapt), label-free

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
    return valence_scores(y, pipeline.score(x, speakers)["valence"].to_numpy())["uar"]


def fresh(model):
    """An unfitted copy with the same hyperparameters (and seed); a wrapped model (an adaptation's)
    is copied too, not shared."""
    params = model.get_params()
    return type(model)(**{k: fresh(v) if isinstance(v, ValenceModel) else v for k, v in params.items()})


def fit_pipeline(
    model,
    table: pd.DataFrame,
    x: np.ndarray,
    features: FeatureSettings,
    normalization: Normalization,
    lone_rows: LoneRows,
    target: TargetRows | None = None,
) -> ValencePipeline:
    """Fit `model` on these rows standardised as `normalization` says, and (LoneRows.OWN_MODEL) a
    copy of it on the same rows standardised with their pooled statistics, for lone served rows.
    `target`: the corpora it adapts to (--adapt), standardised alike, given as its unlabeled rows."""
    pipeline = ValencePipeline(features, Standardiser.fit(x), model, normalization)
    groups = normalization_groups(table, normalization)
    pool = None if target is None else target.standardised(pipeline)
    _fit(model, pipeline.standardise(x, groups), table, pool)
    if lone_rows is LoneRows.OWN_MODEL and normalization is not Normalization.TRAIN:
        pipeline.lone_model = _fit(fresh(model), pipeline.standardise(x), table, pool)
    return pipeline


def _fit(model, x: np.ndarray, table: pd.DataFrame, target: np.ndarray | None):
    # The target's rows when adapting; else a DBN pretrained on an unlabeled pool alone gets its
    # training rows as that pool (label-free).
    pool = target if target is not None else x if model.needs_unlabeled_pool else None
    if pool is None and model.learns_from_unlabeled:
        raise ConfigError("this configuration adapts to a target corpus: name one with --adapt CORPUS")
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
    target: TargetRows | None = None,
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
        fresh(model), table.iloc[train].reset_index(drop=True), x[train], features, normalization, lone_rows, target
    )
    uar = served_uar(validation, x[held], y[held], keys[held])
    uar_lone = served_uar(validation, x[held], y[held])
    final = fit_pipeline(fresh(model), table, x, features, normalization, lone_rows, target) if refit else validation
    return TrainedPipeline(
        final, validation, table, x, np.sort(held), uar, uar_lone, len(train), len(x) if refit else len(train), target
    )
