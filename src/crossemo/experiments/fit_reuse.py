"""Fitted models found again by what they were fitted on, across scenarios and reruns.

A fit is a deterministic function of its model configuration, seed, training rows (features,
labels, speakers), the unlabeled rows it may learn from (for models that learn from them), and the
code and libraries that run it. `fit_key` hashes all of these. The run that fits a model carries
the key as its tag `fit_key` and the model as its `model.joblib` artifact; a later unit with the
same key (the transfer scenario's `audio_used` fit is multi_source's fit of the same corpora; a
rerun after another model's settings changed; a stage resumed after it was stopped) loads that
model instead of fitting it again, and its runs say so (`model_reused_from`).

The store is MLflow's, so a cluster's workers, which share no disk, find each other's fits too.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import tempfile
from pathlib import Path

import joblib
import mlflow
import numpy as np
import sklearn
import torch

log = logging.getLogger(__name__)

FIT_KEY_TAG = "fit_key"  # on the run that fitted the model, beside its one stored copy
REUSED_FROM_TAG = "model_reused_from"  # on a run that used a model stored in another run: that run's id
MODEL_ARTIFACT = "model.joblib"


@functools.cache
def code_fingerprint() -> str:
    """Every source file of the package and the numeric libraries' versions: any edit to the code
    is taken to change every fit (safe, and cheap beside a wrong reuse)."""
    package = Path(__file__).parents[1]  # the whole crossemo package
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(repr((torch.__version__, sklearn.__version__, np.__version__)).encode())
    return digest.hexdigest()


def fit_key(
    config: dict, seed: int, x: np.ndarray, y: np.ndarray, groups: np.ndarray, unlabeled: np.ndarray | None
) -> str:
    """The same configuration (params.yaml's entry, whatever its name), seed, rows and code give the
    same fitted model. `unlabeled`: None for a model that does not learn from unlabeled rows."""
    return joblib.hash((config, seed, x, y, groups, unlabeled, code_fingerprint()))


def stored_model(run):
    """The model an MLflow run used: stored in that run, or in the run its `model_reused_from` names."""
    fitted_in = run.data.tags.get(REUSED_FROM_TAG, run.info.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        return joblib.load(mlflow.MlflowClient().download_artifacts(fitted_in, MODEL_ARTIFACT, tmp))


def find_fitted(key: str):
    """(model, run id) of a finished run that fitted the model of this key, or None."""
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.{FIT_KEY_TAG} = '{key}' and attributes.status = 'FINISHED'"
    for run in client.search_runs(experiments, query, max_results=3):
        try:
            return stored_model(run), run.info.run_id
        except Exception as error:  # noqa: BLE001 - a lost or damaged artifact only means fitting again
            log.warning("the fitted model of run %s could not be read (%s): fitting it again", run.info.run_id, error)
    return None
