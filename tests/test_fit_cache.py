"""Fits reused across scenarios and reruns: only where every input of the fit is the same, with the
same results as fitting again, and never at the cost of a run when the stored model is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from crossemo.data.features import feature_names
from crossemo.experiments import fit_reuse as fit_cache
from crossemo.experiments.runner import ExperimentSettings, Runner
from crossemo.models.estimator import ValenceModel
from crossemo.serving.corpus_evaluation import resolve

from .conftest import TINY_MODELS, feature_table

MODELS = TINY_MODELS  # one model that ignores unlabeled rows, one pretrained on the pool alone
RESULTS = ["model", "source", "target", "seed", "accuracy", "uar", "macro_f1", "confusion"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # mlruns/artifacts is relative to the project root
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def fits(monkeypatch):
    """The models fitted in this process, by class name."""
    fitted = []
    original = ValenceModel.fit

    def counting(self, *args, **kwargs):
        fitted.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ValenceModel, "fit", counting)
    return fitted


def settings(store, **kw) -> ExperimentSettings:
    defaults = dict(models=("svm", "dbn_tiny"), seeds=(0,), tracking_uri=store, log_models=True)
    return ExperimentSettings(**{**defaults, **kw})


def run(scenario: str, store, section=MODELS, **kw) -> pd.DataFrame:
    return Runner(scenario, feature_table(), section, settings(store, **kw), progress=False).run()


def reused_from(results: pd.DataFrame) -> pd.Series:
    """Each result's `model_reused_from` tag (None where its run fitted the model), by run id."""
    client = mlflow.MlflowClient()
    return pd.Series({r: client.get_run(r).data.tags.get("model_reused_from") for r in results["run_id"]})


def test_a_rerun_takes_every_fit_from_the_runs_that_made_it_with_the_same_results(store, fits):
    first = run("leave_one_out", store)
    assert sorted(fits) == ["DBNValence"] * 3 + ["SVMValence"] * 3
    fits.clear()
    again = run("leave_one_out", store)
    assert fits == []
    pd.testing.assert_frame_equal(first[RESULTS], again[RESULTS])
    assert set(reused_from(again)) == set(first["run_id"])


def test_a_changed_configuration_refits_only_its_own_model(store, fits):
    run("leave_one_out", store)
    fits.clear()
    longer = {**MODELS, "dbn_tiny": {**MODELS["dbn_tiny"], "finetune": {"max_epochs": 4, "batch_size": 32}}}
    run("leave_one_out", store, section=longer)
    assert fits == ["DBNValence"] * 3


def test_another_scenario_reuses_a_fit_only_where_its_inputs_are_the_same(store, fits):
    run("single_source", store)  # each corpus alone trains a fit tested on the others
    fits.clear()
    transfer = run("transfer", store, train_corpora=("a",), test_corpora=("b",))
    reused = transfer["run_id"].map(reused_from(transfer)).notna()
    unseen_dbn = (transfer["model"] == "dbn_tiny") & (transfer["protocol"] == "audio_unseen")
    # Without the test corpus' audio the DBN's stack is pretrained on corpus a alone: a new fit. The
    # other three are single_source's fit on a: the SVM ignores unlabeled rows (and its training
    # rows' features are the same either way), and with the audio the DBN's pool is every corpus.
    assert fits == ["DBNValence"]
    assert not reused[unseen_dbn].any() and reused[~unseen_dbn].all()


def test_a_stored_model_that_is_gone_is_fitted_again(store, fits):
    first = run("leave_one_out", store, models=("svm",))
    shutil.rmtree(Path("mlruns/artifacts"))
    fits.clear()
    again = run("leave_one_out", store, models=("svm",))
    assert fits == ["SVMValence"] * 3
    pd.testing.assert_frame_equal(first[RESULTS], again[RESULTS])
    assert reused_from(again).isna().all()


def test_a_code_change_or_reuse_turned_off_fits_again(store, fits, monkeypatch):
    run("leave_one_out", store, models=("svm",))
    fits.clear()
    run("leave_one_out", store, models=("svm",), reuse_fits=False)
    assert fits == ["SVMValence"] * 3
    fits.clear()
    monkeypatch.setattr(fit_cache, "code_fingerprint", lambda: "edited")
    run("leave_one_out", store, models=("svm",))
    assert fits == ["SVMValence"] * 3


def test_a_reused_fit_is_stored_once_and_evaluates_from_any_run_it_serves(store):
    first = run("leave_one_out", store)
    again = run("leave_one_out", store)
    client = mlflow.MlflowClient()
    assert all("model.joblib" not in {a.path for a in client.list_artifacts(r)} for r in again["run_id"])
    table = feature_table()
    x = table[feature_names()].to_numpy(np.float32)
    for fitted, reused in zip(first["run_id"], again["run_id"]):  # `crossemo evaluate RUN_ID` follows the tag
        np.testing.assert_array_equal(resolve(fitted).predict(x, table), resolve(reused).predict(x, table))
