"""Optuna: one sqlite study shared by two worker processes, resumable, every trial a nested MLflow run."""

from __future__ import annotations

import multiprocessing

import mlflow
import numpy as np
import optuna
import pytest
import torch
import yaml

from crossemo.data.features import feature_columns
from crossemo.errors import UserError
from crossemo.experiments.settings import SearchSpace, TuneSettings
from crossemo.experiments.tuning import open_study, prepare, tune

from .conftest import feature_table

pytestmark = pytest.mark.slow

TINY_SPACE = SearchSpace(layers=(1, 1), units=(8, 16), pretrain_epochs=(1, 2), cd_steps=(1, 1), batch_size=(64,))


def settings(tmp_path, **kw) -> TuneSettings:
    defaults = dict(
        corpora=("a", "b"),
        storage=f"sqlite:///{tmp_path}/optuna.db",
        n_trials=6,
        finetune_max_epochs=3,
        finetune_patience=2,
        output=str(tmp_path / "best.yaml"),
        space=TINY_SPACE,
    )
    return TuneSettings(**{**defaults, **kw})


def data():
    table = feature_table()
    table = table[table["corpus"].isin(["a", "b"])].reset_index(drop=True)
    return table, table[feature_columns(table)].to_numpy(np.float32)


def test_two_workers_share_one_study_and_record_every_trial_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_two_workers_share_one_study(tmp_path, settings(tmp_path))


def check_two_workers_share_one_study(tmp_path, s: TuneSettings) -> None:
    """Two worker processes on one study (any storage): every trial recorded once, one MLflow run each."""
    table, x = data()
    prepare(s, resume=False)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=tune, args=(table, x, s, True)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    assert [w.exitcode for w in workers] == [0, 0]
    study = optuna.load_study(study_name=s.study_name, storage=s.storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    numbers = [t.number for t in study.trials]
    assert len(finished) >= s.n_trials and len(numbers) == len(set(numbers)) == len(study.trials)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["crossemo-tuning"], filter_string="tags.trial != ''")
    assert sorted(runs["tags.trial"].astype(int)) == sorted(numbers)  # one nested run per trial, no more
    assert runs["tags.mlflow.parentRunId"].notna().all()
    assert set(runs["tags.pruned"]) <= {"true", "false"}
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["models"]["dbn_tuned"]["model"] == "dbn"
    assert best["tuning_result"]["validation_uar"] == pytest.approx(study.best_value)


def test_an_existing_study_needs_resume_and_keeps_its_finished_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table, x = data()
    s = settings(tmp_path)
    tune(table, x, s, n_trials=2)
    with pytest.raises(UserError, match="--resume"):
        open_study(s, resume=False)
    before = {t.number: t.value for t in optuna.load_study(study_name=s.study_name, storage=s.storage).trials}
    study = tune(table, x, s, resume=True, n_trials=3)
    after = {t.number: t.value for t in study.trials}
    assert len(after) == 3 and all(after[n] == v for n, v in before.items())


def test_pruning_callback_hears_every_epochs_validation_uar():
    """Fine-tuning validates inside its one Lightning step per epoch: the pruning callback must still
    report each epoch's validation UAR to the trial (else no trial is ever pruned)."""
    from crossemo.experiments.tuning import EpochEndPruning
    from crossemo.models.nets import FeedForward, FinetuneSettings
    from crossemo.models.training import finetune

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((120, 6)).astype(np.float32))
    y = torch.from_numpy((x[:, 0] > 0).numpy().astype(np.int64))
    trial = optuna.create_study(direction="maximize").ask()
    settings = FinetuneSettings(max_epochs=4, min_epochs=4, patience=10, batch_size=32)
    finetune(
        FeedForward(6, (8,)),
        x[:90],
        y[:90],
        x[90:],
        y[90:],
        settings,
        progress=False,
        callbacks=[EpochEndPruning(trial, "finetune/val_uar")],
    )
    reported = trial.study.trials[0].intermediate_values
    assert sorted(reported) == [0, 1, 2, 3]
    assert all(0.0 <= value <= 1.0 for value in reported.values())


def test_dropout_weight_decay_and_ensemble_size_are_searched_when_the_space_opens_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import crossemo.experiments.tuning as tuning

    built = []
    real = tuning.DBNValence
    monkeypatch.setattr(tuning, "DBNValence", lambda **kw: built.append(kw) or real(**kw))
    space = SearchSpace(
        layers=(1, 1), units=(8, 8), pretrain_epochs=(1, 1), batch_size=(64,),
        dropout=(0.1, 0.4), weight_decay=(0.0, 0.001), ensemble=(2, 3),
    )  # fmt: skip
    study = tune(*data(), settings(tmp_path, space=space), n_trials=3)
    for trial, kw in zip(study.trials, built):
        assert 0.1 <= trial.params["dropout"] <= 0.4 and trial.params["weight_decay"] in (0.0, 0.001)
        assert kw["ensemble"] == trial.params["ensemble"] in (2, 3)
        assert (kw["finetune"]["dropout"], kw["finetune"]["weight_decay"]) == (
            trial.params["dropout"],
            trial.params["weight_decay"],
        )
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())["models"]["dbn_tuned"]
    assert best["ensemble"] == study.best_params["ensemble"]
    assert best["finetune"]["dropout"] == pytest.approx(study.best_params["dropout"])
    with pytest.raises(ValueError, match="tuning.space.dropout"):
        SearchSpace(dropout=(0.5, 1.0))
    with pytest.raises(ValueError, match="at least 1 member"):
        SearchSpace(ensemble=(0, 2))


def test_two_runs_with_one_seed_propose_the_same_trials_and_a_resume_draws_new_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table, x = data()
    proposed = []
    for name in ("first", "second"):
        s = settings(tmp_path, study_name=name, seed=3)
        prepare(s, resume=False)  # as `crossemo tune` does: create, then reopen in tune()
        proposed.append([t.params for t in tune(table, x, s, resume=True, n_trials=3).trials])
    assert proposed[0] == proposed[1] and len(proposed[0]) == 3
    resumed = tune(table, x, settings(tmp_path, study_name="first", seed=3), resume=True, n_trials=4).trials
    assert resumed[3].params not in proposed[0]


def test_the_written_entry_fitted_again_equals_the_best_trials_fit(tmp_path, monkeypatch):
    from crossemo.data.speakers import speaker_keys
    from crossemo.experiments.metrics import valence_scores
    from crossemo.models.catalog import model_from_config
    from crossemo.models.validation import validation_split

    monkeypatch.chdir(tmp_path)
    table, x = data()
    s = settings(tmp_path)
    study = tune(table, x, s, n_trials=2)
    entry = yaml.safe_load((tmp_path / "best.yaml").read_text())["models"]
    assert entry["dbn_tuned"]["pretrain_data"] == "train"
    labels, groups = table["valence"].to_numpy(), speaker_keys(table).to_numpy()
    train, val = validation_split(labels, groups, s.validation_fraction, s.seed)
    # an experiment hands every fit an unlabeled pool: the entry must pretrain as the trial did, without it
    model = model_from_config(entry, "dbn_tuned", seed=s.seed)
    model.fit(x[train], labels[train], groups=groups[train], unlabeled=x)
    assert valence_scores(labels[val], model.predict(x[val]))["uar"] == pytest.approx(study.best_value, abs=1e-12)
