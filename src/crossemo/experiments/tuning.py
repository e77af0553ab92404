"""Optuna search over the DBN: layers and sizes, learning rates, epochs, CD steps, batch size, and
(when params.yaml's tuning.space opens them) dropout, weight decay and ensemble size.

Maximises UAR on validation speakers that never train; the target test corpus is never touched
(only the corpora named as training data are loaded). The study lives in an Optuna RDB storage
(sqlite by default), so an interrupted study resumes, and several processes or machines share one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import yaml
from optuna_integration import PyTorchLightningPruningCallback

from crossemo.data.speakers import speaker_keys
from crossemo.errors import UserError
from crossemo.experiments import tracking
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.settings import TuneSettings
from crossemo.models.networks import DBNValence
from crossemo.models.validation import validation_split

log = logging.getLogger(__name__)


def storage(settings: TuneSettings) -> optuna.storages.RDBStorage:
    """RDB storage with a heartbeat: a trial whose worker died is failed (when a worker next starts a
    trial), not left running forever."""
    url = settings.storage
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {},
    )


def open_study(settings: TuneSettings, resume: bool, worker: int = 0) -> optuna.Study:
    """The study, with a sampler seeded on every open. The seed also counts the trials already in the
    study and the worker's number: a resumed study or a second worker draws new trials, not the
    first ones again, and two runs with one seed propose the same trials."""
    store = storage(settings)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    exists = settings.study_name in summaries
    if exists and not resume:
        raise UserError(
            f"study {settings.study_name!r} already exists in {settings.storage}: "
            "pass --resume to continue it, or --study-name for a new one"
        )
    trials = summaries[settings.study_name].n_trials if exists else 0
    return optuna.create_study(
        storage=store,
        study_name=settings.study_name,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=settings.seed + trials + 100_003 * worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3),
    )


def prepare(settings: TuneSettings, resume: bool, tracking_uri: str | None = None) -> optuna.Study:
    """Create (or check) the study and the MLflow store once, before workers start: two processes
    creating one sqlite schema at the same moment collide."""
    study = open_study(settings, resume)
    tracking.configure(tracking_uri)
    tracking.experiment("crossemo-tuning")
    return study


class Objective:
    def __init__(
        self, x: np.ndarray, table: pd.DataFrame, settings: TuneSettings, parent_run_id: str, experiment_id: str
    ):
        self.x, self.table, self.settings = x, table, settings
        self.parent_run_id, self.experiment_id = parent_run_id, experiment_id
        self.train, self.val = validation_split(
            table["valence"].to_numpy(), speaker_keys(table).to_numpy(), settings.validation_fraction, settings.seed
        )

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.settings.space.sample(trial)
        config["finetune"].update(
            max_epochs=self.settings.finetune_max_epochs, patience=self.settings.finetune_patience
        )
        tags = {"mlflow.parentRunId": self.parent_run_id, "trial": str(trial.number)}
        # A nested run does not inherit its parent's experiment: name it.
        with mlflow.start_run(
            experiment_id=self.experiment_id, run_name=f"trial {trial.number}", nested=True, tags=tags
        ) as run:
            mlflow.log_params(tracking.flatten(config))
            labels = self.table["valence"].to_numpy()
            groups = speaker_keys(self.table).to_numpy()
            model = DBNValence(
                **config,
                pretrain_data="train",
                seed=self.settings.seed,
                callbacks=[EpochEndPruning(trial, "finetune/val_uar")],
            )
            try:
                model.fit(self.x[self.train], labels[self.train], groups=groups[self.train])
            except optuna.TrialPruned:
                mlflow.set_tag("pruned", "true")
                raise
            uar = valence_scores(labels[self.val], model.predict(self.x[self.val]))["uar"]
            mlflow.log_metric("validation_uar", uar)
            mlflow.set_tag("pruned", "false")
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            return uar


def best_params_yaml(study: optuna.Study, settings: TuneSettings) -> dict:
    """The best trial as a `models:` entry that params.yaml can take up deliberately."""
    best = study.best_trial
    p = best.params
    hidden = [p[f"units_{i}"] for i in range(p["layers"])]
    return {
        "models": {
            "dbn_tuned": {
                "model": "dbn",
                "hidden": hidden,
                "pretrain_data": "train",  # as every trial pretrained: on the training rows alone
                "ensemble": p.get("ensemble", 1),  # studies begun before these levers lack them
                "pretrain": {
                    "learning_rate": p["pretrain_learning_rate"],
                    "epochs": p["pretrain_epochs"],
                    "cd_steps": p["cd_steps"],
                    "batch_size": p["batch_size"],
                },
                "finetune": {
                    "learning_rate": p["finetune_learning_rate"],
                    "batch_size": p["batch_size"],
                    "dropout": p.get("dropout", 0.0),
                    "weight_decay": p.get("weight_decay", 0.0),
                    "max_epochs": settings.finetune_max_epochs,
                    "patience": settings.finetune_patience,
                },
            }
        },
        "tuning_result": {
            "study": settings.study_name,
            "trial": best.number,
            "validation_uar": best.value,
            "corpora": list(settings.corpora),
        },
    }


def tune(
    table: pd.DataFrame,
    x: np.ndarray,
    settings: TuneSettings,
    resume: bool = False,
    tracking_uri: str | None = None,
    n_trials: int | None = None,
    worker: int = 0,
) -> optuna.Study:
    """Run (or resume) the study in this process until it holds n_trials finished trials. `worker`:
    this process' number among those sharing the study (their samplers differ)."""
    study = open_study(settings, resume, worker)
    target = n_trials or settings.n_trials
    done = len([t for t in study.trials if t.state.is_finished()])
    tracking.configure(tracking_uri)
    experiment_id = tracking.experiment("crossemo-tuning")
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"study {settings.study_name}",
        tags={**tracking.provenance_tags(list(settings.corpora)), "study": settings.study_name},
    ) as parent:
        objective = Objective(x, table, settings, parent.info.run_id, experiment_id)
        # MaxTrialsCallback counts across workers: together they stop at the target.
        study.optimize(
            objective,
            n_trials=max(0, target - done),
            timeout=settings.timeout,
            catch=(),
            callbacks=[optuna.study.MaxTrialsCallback(target, states=None)],
        )
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        out = Path(settings.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(best_params_yaml(study, settings), sort_keys=False))
    return study


class EpochEndPruning(PyTorchLightningPruningCallback):
    """Optuna's Lightning pruning callback, asked at each epoch's end: it listens for Lightning's
    validation loop, and crossemo's fine-tuning validates inside its one step per epoch instead."""

    def on_train_epoch_end(self, trainer, pl_module):
        self.on_validation_end(trainer, pl_module)
