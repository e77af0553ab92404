"""`--adapt`: a model configuration fitted with a user's corpus as its adaptation target, label-free.

The transductive case of `crossemo.models.adaptation`: the user's whole corpus is given at once as the
target rows (its labels, if it has any, are dropped before the fit). `crossemo register --adapt CORPUS`
registers a model adapted to CORPUS; `crossemo evaluate --adapt` refits a registered version's
configuration on its own training corpora once per evaluated corpus, that corpus as the target.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from crossemo.data.features import feature_columns
from crossemo.errors import ConfigError, UserError
from crossemo.experiments.normalization import normalization_groups
from crossemo.models.adaptation import Adaptation

REGISTRATION_ARTIFACT = "registration.json"  # what `register` trained: configuration, corpora, seed, settings


@dataclass(frozen=True)
class TargetRows:
    """The corpora a model adapts to: their label-free table (corpus, speaker) and raw features."""

    corpora: tuple[str, ...]
    table: pd.DataFrame
    x: np.ndarray

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame]) -> TargetRows:
        """Every row of these feature tables, labelled or not: the valence column is dropped here."""
        frame = pd.concat(tables.values(), ignore_index=True)
        x = frame[feature_columns(frame)].to_numpy(np.float32)
        return cls(tuple(tables), frame[["corpus", "speaker"]].reset_index(drop=True), x)

    def standardised(self, pipeline) -> np.ndarray:
        """Standardised as the pipeline standardises its training rows (per speaker or corpus on their
        own statistics, or the training rows' pooled ones)."""
        return pipeline.standardise(self.x, normalization_groups(self.table, pipeline.normalization))

    def describe(self, method: str) -> str:
        return f"{method} to {', '.join(self.corpora)} ({len(self.x)} utterances, label-free)"


def adapted_configuration(config: dict, name: str, method: str | None) -> dict:
    """The configuration with `method` as its adaptation (None: its own); none is refused, naming the fix."""
    chosen = method or config.get("adaptation", Adaptation.NONE)
    if chosen == Adaptation.NONE:
        raise ConfigError(
            f"--adapt: models.{name}.adaptation is none; give --adapt-method "
            f"({', '.join(m for m in Adaptation if m is not Adaptation.NONE)}) or a configuration that names one"
        )
    options = {key: value for key, value in config.items() if key not in set(Adaptation) or key == chosen}
    return {**options, "adaptation": str(chosen)}


def log_registration(run_params: dict) -> None:
    """Into the active run: what `evaluate --adapt` needs to fit the same configuration again."""
    mlflow.log_dict(run_params, REGISTRATION_ARTIFACT)


def registration(version) -> dict:
    """What a registered version was trained with (its registration.json)."""
    try:
        path = mlflow.MlflowClient().download_artifacts(version.run_id, REGISTRATION_ARTIFACT, tempfile.mkdtemp())
        recorded = json.loads(Path(path).read_text())
    except (mlflow.exceptions.MlflowException, OSError):
        recorded = {}
    if not {"model", "config", "corpora", "seed"} <= set(recorded):
        raise UserError(
            f"{version.name} v{version.version} records no configuration (registered before crossemo 0.3, or "
            "not by `crossemo register`): register it again to evaluate it with --adapt"
        )
    return recorded
