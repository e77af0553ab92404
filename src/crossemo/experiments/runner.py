"""The scenario runner: a scenario's jobs grouped into units of work (one fit and the test splits
it serves), run on an executor, each logged as nested MLflow runs; fits reused where their inputs
and code are the same."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from crossemo.data.features import labelled_rows
from crossemo.data.speakers import speaker_keys
from crossemo.experiments import tracking
from crossemo.experiments.executors import run_units
from crossemo.experiments.fit_reuse import FIT_KEY_TAG, REUSED_FROM_TAG, find_fitted, fit_key
from crossemo.experiments.jobs import PROTOCOLS, Job
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalize, normalize_unseen
from crossemo.experiments.protocols import (
    Split,
)
from crossemo.experiments.runs import end_lost_children, end_unfinished_children, log_artifacts, parent_metrics
from crossemo.experiments.settings import Executor, ExperimentSettings, Scenario, TargetAudio, UnlabeledPool
from crossemo.experiments.stack_store import ArtifactStackStore
from crossemo.models.catalog import model_from_config
from crossemo.models.stacks import StackCache

log = logging.getLogger(__name__)


RESULT_COLUMNS = [
    "scenario",
    "protocol",
    "model",
    "source",
    "target",
    "seed",
    "fold",
    "fraction",
    "speaker_disjoint",
    "notes",
    "n_train",
    "accuracy",
    "uar",
    "macro_f1",
    "majority_rate",
    "n_test",
    "confusion",
    "run_id",
]


@dataclass(frozen=True)
class Unit:
    """One fit and the test splits it serves: the same model, seed, training rows and unlabeled pool
    give the same fit (a single-source model serves every target), so they share a unit."""

    model_name: str
    seed: int
    jobs: tuple[tuple[int, Job], ...]  # (position in the scenario's run order, job)


@dataclass(frozen=True)
class StackWarmup:
    """Pretrains, ahead of the fits, a stack that several fits share: those of one pool-only DBN
    configuration and seed whose unlabeled pools are the same rows. Without it the worker that
    reaches such a fit first pretrains (minutes at paper size) while the others, reaching fits of
    the same stack, wait idle on its lock."""

    model_name: str
    seed: int
    pool: np.ndarray  # the rows the stack is pretrained on


@dataclass(frozen=True)
class RunContext:
    """What a unit needs, wherever it runs: the normalised features, labels, and the MLflow parent."""

    scenario: Scenario
    models: dict  # params.yaml's models: section, name -> configuration
    settings: ExperimentSettings
    x: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray  # corpus/speaker keys, for the speaker-disjoint validation split
    meta: pd.DataFrame  # corpus, utterance_id, speaker: the predictions' first columns
    experiment_id: str
    parent_id: str
    tags: dict


@dataclass
class Runner:
    """Runs one scenario: its splits x models x seeds, as units spread over `settings.workers`
    processes. Results come back in the scenario's own order whatever the worker count."""

    scenario: Scenario
    table: pd.DataFrame
    models: dict  # params.yaml's models: section, name -> configuration
    settings: ExperimentSettings
    progress: bool = True

    def __post_init__(self):
        self.scenario = Scenario(self.scenario)
        self.table, self.features = labelled_rows(self.table)
        self.corpora = list(dict.fromkeys(self.table["corpus"]))
        self.languages = self.table.groupby("corpus")["language"].first().to_dict()
        for name in self.settings.models:  # a bad setting is refused now, before any run opens
            model_from_config(self.models, name)

    def run(self) -> pd.DataFrame:
        uri = tracking.configure(self.settings.tracking_uri)  # made absolute there, for every worker
        experiment_id = tracking.experiment(f"crossemo-{self.scenario}")
        tags = {**tracking.provenance_tags(self.corpora), "scenario": str(self.scenario)}
        work = [
            (seed, job)
            for seed in self.settings.seeds
            for job in PROTOCOLS[self.scenario](self.table, self.corpora, self.languages, self.settings, seed)
        ]
        if not work:
            log.warning(
                "%s: no configuration fits these corpora (e.g. multi-source needs corpora of several other languages)",
                self.scenario,
            )
        settings = replace(self.settings, tracking_uri=uri, cache_dir=str(Path(self.settings.cache_dir).resolve()))
        if settings.executor is Executor.DASK:  # the stacks' experiment, made here: in this project's folder
            tracking.experiment(ArtifactStackStore.EXPERIMENT)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{self.scenario}", tags=tags) as parent:
            mlflow.log_params(tracking.flatten({"experiments": _jsonable(self.settings)}))
            x = self._normalized_once()
            units = self._units(work)
            context = RunContext(
                self.scenario,
                self.models,
                settings,
                x,
                self.table["valence"].to_numpy(),
                speaker_keys(self.table).to_numpy(),
                self.table[["corpus", "utterance_id", "speaker"]],
                experiment_id,
                parent.info.run_id,
                tags,
            )
            try:
                rows = self._execute(context, [*self._warmups(units, x), *units])
            except BaseException as stop:
                end_unfinished_children(parent.info.run_id, stop)
                raise
            results = pd.DataFrame([row for _, row in sorted(rows, key=lambda r: r[0])], columns=RESULT_COLUMNS)
            mlflow.log_metrics(parent_metrics(results))
        return results

    def _execute(self, context: RunContext, work: list[StackWarmup | Unit]) -> list[tuple[int, dict]]:
        rows = []
        runs = sum(len(item.jobs) for item in work if isinstance(item, Unit))
        bar = tqdm(total=runs, desc=str(self.scenario), disable=not self.progress)
        for done in run_units(run_item, context, work, self.settings):
            rows += done
            bar.update(len(done))
        bar.close()
        if self.settings.executor is Executor.DASK:  # only a cluster runs a unit again after a lost worker
            end_lost_children(context.parent_id, {row["run_id"] for _, row in rows})
        return rows

    def _warmups(self, units: list[Unit], x: np.ndarray | None) -> list[StackWarmup]:
        """One per stack that two or more units would pretrain (the same pool-only DBN configuration,
        seed and pool rows), in the units' order: e.g. per seed, every fit's pool of all rows, or with
        experiments.unlabeled: target, a test corpus' rows, shared by each source's fit."""
        pool_only = {m for m in self.settings.models if model_from_config(self.models, m).needs_unlabeled_pool}
        shared: dict[tuple, list[np.ndarray]] = {}
        for unit in units:
            if unit.model_name in pool_only:
                _, job = unit.jobs[0]
                pool = _pool(self.settings, x if job.x is None else job.x, job)
                if pool is None:  # no pool to pretrain on: the fit itself says so
                    continue
                digest = hashlib.sha1(np.ascontiguousarray(pool).tobytes()).digest()
                shared.setdefault((unit.model_name, unit.seed, pool.shape, digest), []).append(pool)
        return [StackWarmup(name, seed, pools[0]) for (name, seed, *_), pools in shared.items() if len(pools) > 1]

    def _normalized_once(self) -> np.ndarray | None:
        """corpus / speaker statistics do not depend on the split: one matrix serves every job."""
        if self.settings.normalization is Normalization.TRAIN:
            return None
        return normalize(self.features, self.table, None, self.settings.normalization)

    def _units(self, work: list[tuple[int, Job]]) -> list[Unit]:
        grouped: dict[tuple, list] = {}
        for position, (seed, job) in enumerate(work):
            if job.target_audio is TargetAudio.UNSEEN:  # the test rows on the training rows' statistics
                job = replace(
                    job, x=normalize_unseen(self.features, self.table, job.split, self.settings.normalization)
                )
            elif self.settings.normalization is Normalization.TRAIN:  # training rows' statistics, per job
                job = replace(job, x=normalize(self.features, self.table, job.split, Normalization.TRAIN))
            for m, model_name in enumerate(self.settings.models):
                # unseen and statistics share a unit: the same fit, the test rows scaled two ways
                pool = (self._pool_key(job.split), job.target_audio.pooled)
                key = (model_name, seed, job.split.train.tobytes(), pool)
                grouped.setdefault(key, []).append((position * len(self.settings.models) + m, job))
        return [Unit(key[0], key[1], tuple(jobs)) for key, jobs in grouped.items()]

    def _pool_key(self, split: Split) -> bytes:
        # The 'target' pool is the test corpus' rows: it changes with the test split; the others do not.
        return split.test.tobytes() if self.settings.unlabeled is UnlabeledPool.TARGET else b""


def run_item(context: RunContext, item: StackWarmup | Unit) -> list[tuple[int, dict]]:
    """What an executor runs: a stack warm-up (no rows) or a unit (its rows), in any worker."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // context.settings.workers))  # the cores, shared
    if threading.current_thread() is threading.main_thread():
        # a worker process ended with its stage (SIGTERM to the group) closes its open run as FAILED
        signal.signal(signal.SIGTERM, _raise_interrupt)
    tracking.configure(context.settings.tracking_uri)
    # a reused fit downloads one small file: a progress bar per unit would bury the stage's own
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if isinstance(item, StackWarmup):
        _warm_up(context, item)
        return []
    return run_unit(context, item)


def _warm_up(context: RunContext, warmup: StackWarmup) -> None:
    """The stack into the store, its pretraining curves in a nested run of its own."""
    tags = {**context.tags, "model": warmup.model_name, "seed": str(warmup.seed), "stage": "pretraining"}
    with mlflow.start_run(
        experiment_id=context.experiment_id,
        run_name=f"{warmup.model_name} pretraining seed{warmup.seed}",
        tags=tags,
        nested=True,
        parent_run_id=context.parent_id,
    ) as run:
        model = _logged_model(context, warmup.model_name, warmup.seed, run.info.run_id)
        model.prepare_stack(warmup.pool)


def run_unit(context: RunContext, unit: Unit) -> list[tuple[int, dict]]:
    """Fit once (in the unit's first run, which carries the curves), or take the same fit from an
    earlier run (`crossemo.experiments.fit_reuse`), then test on every job's split."""
    rows, model, fitted_in, key = [], None, None, None
    for position, job in unit.jobs:
        with _nested_run(context, unit, job) as run:
            x = context.x if job.x is None else job.x
            if model is None:
                key = _fit_key(context, unit, job, x)
                found = find_fitted(key) if key else None
                model, fitted_in = found or (_fit(context, unit, job, x, run.info.run_id), run.info.run_id)
            fitted_here = fitted_in == run.info.run_id
            if not fitted_here:  # the model is stored once, in the run that fitted it
                mlflow.set_tag(REUSED_FROM_TAG, fitted_in)
            elif key:
                mlflow.set_tag(FIT_KEY_TAG, key)
            rows.append((position, _score_test_rows(context, unit, job, x, model, run.info.run_id, fitted_here)))
    return rows


def _fit_key(context: RunContext, unit: Unit, job: Job, x: np.ndarray) -> str | None:
    """What the unit's fit depends on (`crossemo.experiments.fit_reuse.fit_key`); None when fits are not reused
    (or not logged, so that no run could hand its model on)."""
    if not (context.settings.reuse_fits and context.settings.log_models):
        return None
    train = job.split.train
    pool = (
        _pool(context.settings, x, job)
        if model_from_config(context.models, unit.model_name).learns_from_unlabeled
        else None
    )
    return fit_key(
        context.models[unit.model_name], unit.seed, x[train], context.labels[train], context.speakers[train], pool
    )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def _nested_run(context: RunContext, unit: Unit, job: Job):
    split = job.split
    tags = {
        **context.tags,
        "model": unit.model_name,
        "protocol": job.protocol,
        "source": split.source,
        "target": split.target,
        "seed": str(unit.seed),
        "fold": str(split.fold),
        "fraction": str(split.fraction),
        "speaker_disjoint": str(split.speaker_disjoint),
    }
    name = (
        f"{unit.model_name} {split.source}->{split.target} seed{unit.seed}"
        + (f" fold{split.fold}" if split.fold else "")
        + (f" {split.fraction:.0%}" if split.fraction else "")
    )
    return mlflow.start_run(
        experiment_id=context.experiment_id, run_name=name, tags=tags, nested=True, parent_run_id=context.parent_id
    )


def _pool(settings: ExperimentSettings, x: np.ndarray, job: Job) -> np.ndarray | None:
    """The label-free rows a fit of `job` may learn from (experiments.unlabeled, transfer's target_audio)."""
    unlabeled, split = settings.unlabeled, job.split
    if unlabeled is UnlabeledPool.NONE:
        return None
    if not job.target_audio.pooled:  # the training corpora's rows alone, or nothing
        return x[split.train] if unlabeled is UnlabeledPool.ALL else None
    return x[split.test] if unlabeled is UnlabeledPool.TARGET else x


def _logged_model(context: RunContext, model_name: str, seed: int, run_id: str):
    """A fresh model of the named configuration, its hyperparameters logged to the run, its curves
    going to the run and its pretrained stacks to the executor's store."""
    from crossemo.experiments.epoch_curves import BatchedMLFlowLogger

    mlflow.log_params(tracking.flatten(context.models.get(model_name, {})))
    # offered to every model; each takes what its class declares (models.MODELS[kind].RUNTIME)
    runtime = {
        "logger": BatchedMLFlowLogger(context.settings.tracking_uri, run_id),
        "stack_store": stack_store(context.settings),
    }
    return model_from_config(context.models, model_name, seed=seed, **runtime)


def _fit(context: RunContext, unit: Unit, job: Job, x: np.ndarray, run_id: str):
    model = _logged_model(context, unit.model_name, unit.seed, run_id)
    split = job.split
    return model.fit(
        x[split.train],
        context.labels[split.train],
        groups=context.speakers[split.train],
        unlabeled=_pool(context.settings, x, job),
    )


def stack_store(settings: ExperimentSettings) -> StackCache | ArtifactStackStore:
    """Local workers share the cache folder; a cluster's workers share no disk, but all reach the
    tracking server's artifact store."""
    if settings.executor is Executor.DASK:
        return ArtifactStackStore(settings.tracking_uri)
    return StackCache(settings.cache_dir)


def _score_test_rows(
    context: RunContext, unit: Unit, job: Job, x: np.ndarray, model, run_id: str, log_model: bool
) -> dict:
    split = job.split
    proba = model.predict_proba(x[split.test])
    predicted = model.predict(x[split.test])  # the model's own decisions (an SVM's are class-balanced)
    scores = valence_scores(context.labels[split.test], predicted)
    mlflow.log_metrics({k: scores[k] for k in ("accuracy", "uar", "macro_f1", "majority_rate")})
    stored = model if log_model and context.settings.log_models else None
    log_artifacts(context.meta, context.labels, split, predicted, proba, scores, stored)
    return {
        "scenario": str(context.scenario),
        "protocol": job.protocol,
        "model": unit.model_name,
        "source": split.source,
        "target": split.target,
        "seed": unit.seed,
        "fold": split.fold,
        "fraction": split.fraction,
        "speaker_disjoint": split.speaker_disjoint,
        "notes": split.notes,
        "n_train": len(split.train),
        **{k: v for k, v in scores.items() if k != "confusion"},
        "confusion": json.dumps(scores["confusion"]),
        "run_id": run_id,
    }


def _jsonable(settings: ExperimentSettings) -> dict:
    return {
        k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v)
        for k, v in vars(settings).items()
    }


def load_features(corpora: list[str], directory: str | Path = "features") -> pd.DataFrame:
    missing = [c for c in corpora if not (Path(directory) / f"{c}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"features for {missing} not found under {directory}/: run `dvc repro` first")
    return pd.concat([pd.read_parquet(Path(directory) / f"{c}.parquet") for c in corpora], ignore_index=True)
