"""The paper's scenarios: splits x models x seeds -> metrics, every run logged to MLflow."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import signal
import tempfile
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import tracking
from .config import Executor, ExperimentSettings, Scenario, TargetAudio, UnlabeledPool
from .errors import ConfigError
from .executors import run_units
from .features import labelled_rows
from .fit_cache import FIT_KEY_TAG, MODEL_ARTIFACT, REUSED_FROM_TAG, find_fitted, fit_key
from .metrics import evaluate
from .models import model_from_config
from .splits import (
    Normalization,
    Split,
    cross_corpus,
    normalize,
    normalize_unseen,
    speaker_keys,
    target_fraction,
    within_random,
    within_sessions,
    within_speaker_folds,
)
from .stacks import ArtifactStackStore, StackCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    protocol: str  # random / speaker (within), audio_<TargetAudio> (transfer), or the scenario's name
    split: Split
    x: np.ndarray | None = None  # this job's own normalised features (training-set statistics) if any
    target_audio: TargetAudio = TargetAudio.USED  # whether the test corpus' label-free audio may be used


def _trainable(corpora, s: ExperimentSettings) -> list[str]:
    """The corpora whose labels may train: a test-only corpus is only ever a target."""
    return [c for c in corpora if c not in s.test_only]


def _within(table, corpora, languages, s: ExperimentSettings, seed):
    jobs = []
    for corpus in _trainable(corpora, s):
        if "random" in s.within_protocols:
            jobs += [Job("random", split) for split in within_random(table, corpus, seed, s.test_size)]
        if "speaker" in s.within_protocols:
            jobs += [Job("speaker", split) for split in within_speaker_folds(table, corpus, seed, s.speaker_folds)]
        if "sessions" in s.within_protocols:  # corpora with sessions (IEMOCAP) only
            jobs += [Job("sessions", split) for split in within_sessions(table, corpus)]
    return jobs


def _single_source(table, corpora, languages, s, seed):
    return [
        Job("single_source", cross_corpus(table, [src], tgt))
        for src in _trainable(corpora, s)
        for tgt in corpora
        if src != tgt
    ]


def _target_fraction(table, corpora, languages, s, seed):
    """All other corpora as the source, plus a growing share of the target (so never a test-only one)."""
    trainable = _trainable(corpora, s)
    return [
        Job("target_fraction", target_fraction(table, [c for c in trainable if c != tgt], tgt, f, seed))
        for tgt in trainable
        for f in s.fractions
    ]


def _multi_source(table, corpora, languages, s, seed):
    """Every set of `multi_source_size` other corpora spanning as many languages, tested on the target."""
    jobs = []
    for tgt in corpora:
        others = [c for c in _trainable(corpora, s) if c != tgt]
        for sources in itertools.combinations(others, s.multi_source_size):
            if len({languages[c] for c in sources}) == len(sources):
                jobs.append(Job("multi_source", cross_corpus(table, list(sources), tgt)))
    return jobs


def _leave_one_out(table, corpora, languages, s, seed):
    return [
        Job("leave_one_out", cross_corpus(table, [c for c in _trainable(corpora, s) if c != tgt], tgt))
        for tgt in corpora
    ]


def _transfer(table, corpora, languages, s: ExperimentSettings, seed):
    """The named training corpora -> each test corpus, in each of `target_audio`'s ways (TargetAudio)."""
    tests = list(s.test_corpora or s.test_only)
    if not tests:
        raise ConfigError(
            "the transfer scenario has no test corpus: mark corpora test_only: true in params.yaml's "
            "corpora, or list experiments.transfer.test_corpora"
        )
    train = list(s.train_corpora or [c for c in _trainable(corpora, s) if c not in tests])
    if set(train) & set(tests) or not train:
        raise ConfigError(
            f"experiments.transfer: training corpora {train} and test corpora {tests} must be disjoint and not empty"
        )
    return [
        Job(f"audio_{audio}", cross_corpus(table, train, target), target_audio=audio)
        for audio in s.target_audio
        for target in tests
    ]


PROTOCOLS = {
    Scenario.WITHIN: _within,
    Scenario.SINGLE_SOURCE: _single_source,
    Scenario.TARGET_FRACTION: _target_fraction,
    Scenario.MULTI_SOURCE: _multi_source,
    Scenario.LEAVE_ONE_OUT: _leave_one_out,
    Scenario.TRANSFER: _transfer,
}


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
                _end_unfinished_children(parent.info.run_id, stop)
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
            _end_lost_children(context.parent_id, {row["run_id"] for _, row in rows})
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


def _end_unfinished_children(parent_id: str, stop: BaseException) -> None:
    """Nested runs that a stopped scenario leaves open (their worker was ended with it) are marked
    KILLED when the run was interrupted, FAILED when it crashed: never left RUNNING forever."""
    status = "KILLED" if isinstance(stop, KeyboardInterrupt) else "FAILED"
    client = mlflow.MlflowClient()
    for run in _children(client, parent_id, "attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, status)
    if status == "KILLED":
        mlflow.end_run("KILLED")  # the parent too; otherwise the context manager records FAILED


def _end_lost_children(parent_id: str, kept: set[str]) -> None:
    """A unit whose worker died midway ran again elsewhere: the nested runs of the lost attempt
    (left RUNNING, or finished before the worker died) are marked KILLED and tagged, so that only the
    runs behind the results count."""
    client = mlflow.MlflowClient()
    for run in _children(client, parent_id):
        finished_pretraining = run.data.tags.get("stage") == "pretraining" and run.info.status == "FINISHED"
        if run.info.run_id not in kept and not finished_pretraining:
            client.set_tag(run.info.run_id, "lost_with_worker", "true")
            client.set_terminated(run.info.run_id, "KILLED")


def _children(client: mlflow.MlflowClient, parent_id: str, condition: str | None = None) -> list:
    """The parent run's nested runs (all of them: a scenario has thousands at most), optionally filtered."""
    query = f"tags.mlflow.parentRunId = '{parent_id}'" + (f" and {condition}" if condition else "")
    return client.search_runs([client.get_run(parent_id).info.experiment_id], query, max_results=50000)


def parent_metrics(results: pd.DataFrame) -> dict[str, float]:
    """Mean UAR and accuracy over a scenario's runs, per model and per model and target: the parent
    run's own columns in `mlflow ui`, so configurations compare without opening nested runs."""
    metrics = {}
    for model, runs in results.groupby("model"):
        metrics[f"uar/{model}"], metrics[f"accuracy/{model}"] = runs["uar"].mean(), runs["accuracy"].mean()
        for target, cells in runs.groupby("target"):
            metrics[f"uar/{model}/{target}"] = cells["uar"].mean()
    return {name: float(value) for name, value in metrics.items()}


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
    earlier run (`crossemo.fit_cache`), then test on every job's split."""
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
            rows.append((position, _evaluate(context, unit, job, x, model, run.info.run_id, fitted_here)))
    return rows


def _fit_key(context: RunContext, unit: Unit, job: Job, x: np.ndarray) -> str | None:
    """What the unit's fit depends on (`crossemo.fit_cache.fit_key`); None when fits are not reused
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
    from .epoch_curves import BatchedMLFlowLogger  # a Lightning logger: loaded where fits run

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


def _evaluate(context: RunContext, unit: Unit, job: Job, x: np.ndarray, model, run_id: str, log_model: bool) -> dict:
    split = job.split
    proba = model.predict_proba(x[split.test])
    predicted = model.predict(x[split.test])  # the model's own decisions (an SVM's are class-balanced)
    scores = evaluate(context.labels[split.test], predicted)
    mlflow.log_metrics({k: scores[k] for k in ("accuracy", "uar", "macro_f1", "majority_rate")})
    _log_artifacts(context, split, predicted, proba, scores, model if log_model else None)
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


def _log_artifacts(context: RunContext, split: Split, predicted, proba, scores, model_to_store) -> None:
    """Predictions and confusion matrix; the model too, unless it is stored in the run that fitted it (None)."""
    from .report import confusion_figure

    predictions = context.meta.iloc[split.test].assign(
        true=context.labels[split.test], predicted=predicted, p_negative=proba[:, 0], p_positive=proba[:, 1]
    )
    with tempfile.TemporaryDirectory() as tmp:
        predictions.to_csv(Path(tmp) / "predictions.csv", index=False)
        figure = confusion_figure(np.array(scores["confusion"]), f"{split.source} -> {split.target}")
        figure.savefig(Path(tmp) / "confusion_matrix.png", dpi=80)
        if context.settings.log_models and model_to_store is not None:
            joblib.dump(model_to_store, Path(tmp) / MODEL_ARTIFACT)
        mlflow.log_artifacts(tmp)


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
