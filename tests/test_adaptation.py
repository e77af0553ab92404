"""Domain adaptation: CORAL aligns the training rows to the target's covariance, for every model, label-free."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crossemo.errors import ConfigError
from crossemo.experiments.runner import Runner
from crossemo.experiments.settings import ExperimentSettings
from crossemo.models.adaptation import CoralAdapted, coral_matrix
from crossemo.models.baselines import SVMValence
from crossemo.models.catalog import model_from_config

from .conftest import TINY_MODELS, feature_table


def two_domains(seed: int = 0, n: int = 400, d: int = 6):
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    target = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0
    return source.astype(np.float64), target.astype(np.float64)


def test_coral_gives_the_training_rows_the_targets_covariance():
    source, target = two_domains()
    matrix = coral_matrix(source, target, regularisation=0.0)
    aligned = (source - source.mean(0)) @ matrix
    np.testing.assert_allclose(np.cov(aligned, rowvar=False), np.cov(target, rowvar=False), rtol=1e-6, atol=1e-6)


def test_the_svm_with_coral_is_the_svm_on_the_hand_computed_transform():
    source, target = two_domains(1)
    x, t = source.astype(np.float32), target.astype(np.float32)
    y = np.where(source[:, 0] > np.median(source[:, 0]), "positive", "negative")
    configs = {"svm_coral": {"model": "svm", "adaptation": "coral"}}
    adapted = model_from_config(configs, "svm_coral").fit(x, y, unlabeled=t)
    assert isinstance(adapted, CoralAdapted)
    # by hand: the paper's regularised covariances (+ I), rows centred on their mean and moved back
    eye = np.eye(x.shape[1])
    c_s, c_t = np.cov(x, rowvar=False) + eye, np.cov(t, rowvar=False) + eye
    values_s, vectors_s = np.linalg.eigh(c_s)
    values_t, vectors_t = np.linalg.eigh(c_t)
    by_hand = (vectors_s / np.sqrt(values_s)) @ vectors_s.T @ (vectors_t * np.sqrt(values_t)) @ vectors_t.T
    plain = SVMValence().fit(((x - x.mean(0)) @ by_hand + x.mean(0)).astype(np.float32), y)
    np.testing.assert_allclose(adapted.predict_proba(t), plain.predict_proba(t), atol=1e-4)
    assert (adapted.predict(t) == plain.predict(t)).all()
    reordered = model_from_config(configs, "svm_coral").fit(x, y, unlabeled=t[::-1].copy())
    np.testing.assert_allclose(reordered.predict_proba(t), adapted.predict_proba(t), atol=1e-6)


def test_unknown_methods_are_refused_naming_the_key_and_coral_without_target_rows_says_why():
    with pytest.raises(ConfigError, match=r"models.svm_x.adaptation is 'dann'; use one of none, coral"):
        model_from_config({"svm_x": {"model": "svm", "adaptation": "dann"}}, "svm_x")
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match="experiments.unlabeled: target"):
        model_from_config({"c": {"model": "svm", "adaptation": "coral"}}, "c").fit(x, ["negative", "positive"] * 10)


@pytest.mark.slow
def test_no_target_label_reaches_a_coral_fit(tmp_path, monkeypatch):
    """Leave one corpus out with the target's rows as the pool: shuffling the left-out corpus' labels
    changes its scores (the truth moved) but not one of its predictions."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    models = {**TINY_MODELS, "svm_coral": {"model": "svm", "adaptation": "coral"}}
    table = feature_table()
    shuffled = table.copy()
    target = shuffled["corpus"] == "a"
    shuffled.loc[target, "valence"] = np.random.default_rng(3).permutation(shuffled.loc[target, "valence"].to_numpy())
    predicted = []
    for name, frame in (("first", table), ("shuffled", shuffled)):
        store = f"sqlite:///{tmp_path}/{name}.db"
        settings = ExperimentSettings(
            models=("svm_coral",),
            seeds=(0,),
            unlabeled="target",
            tracking_uri=store,
            log_models=False,
            reuse_fits=False,
            workers=1,
        )
        Runner("leave_one_out", frame, models, settings, progress=False).run()
        mlflow.set_tracking_uri(store)
        run = mlflow.search_runs(experiment_names=["crossemo-leave_one_out"], filter_string="tags.target = 'a'")
        path = mlflow.artifacts.download_artifacts(run_id=run["run_id"].item(), artifact_path="predictions.csv")
        predicted.append(pd.read_csv(path)["predicted"].tolist())
    assert predicted[0] == predicted[1] and len(predicted[0]) == int(target.sum())
