"""The paper's scenarios: splits x models x seeds -> metrics, every run logged to MLflow."""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import tracking
from .metrics import evaluate
from .splits import (Normalization, Split, cross_corpus, normalize, target_fraction, within_random,
                     speaker_keys, within_sessions, within_speaker_folds)

log = logging.getLogger(__name__)


class Scenario(StrEnum):
    WITHIN = "within"
    SINGLE_SOURCE = "single_source"
    TARGET_FRACTION = "target_fraction"
    MULTI_SOURCE = "multi_source"
    LEAVE_ONE_OUT = "leave_one_out"


class UnlabeledPool(StrEnum):
    """Which label-free feature rows each fit may use for unsupervised learning."""

    NONE = "none"
    TARGET = "target"  # the test corpus' own rows (their features, never their labels)
    ALL = "all"  # every row of every corpus: one shared pool, so one cached RBM stack per seed


@dataclass(frozen=True)
class ExperimentSettings:
    models: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    normalization: Normalization = Normalization.CORPUS
    unlabeled: UnlabeledPool = UnlabeledPool.ALL
    within_protocols: tuple[str, ...] = ("random", "speaker")
    test_size: float = 0.25
    speaker_folds: int = 5
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    multi_source_size: int = 2
    log_models: bool = True
    cache_dir: str = ".cache/pretrained"
    tracking_uri: str = tracking.TRACKING_URI

    def __post_init__(self):
        object.__setattr__(self, "normalization", Normalization(self.normalization))
        object.__setattr__(self, "unlabeled", UnlabeledPool(self.unlabeled))
        for name in ("models", "seeds", "within_protocols", "fractions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = set(self.within_protocols) - {"random", "speaker", "sessions"}
        if unknown:
            raise ValueError(f"experiments.within_protocols: unknown {sorted(unknown)}; use random, speaker, sessions")
        if not self.models or not self.seeds:
            raise ValueError("experiments.models and experiments.seeds must not be empty")


@dataclass(frozen=True)
class Job:
    protocol: str  # random / speaker (within), or the scenario's name
    split: Split


def _within(table, corpora, languages, s: ExperimentSettings, seed):
    jobs = []
    for corpus in corpora:
        if "random" in s.within_protocols:
            jobs += [Job("random", split) for split in within_random(table, corpus, seed, s.test_size)]
        if "speaker" in s.within_protocols:
            jobs += [Job("speaker", split) for split in within_speaker_folds(table, corpus, seed, s.speaker_folds)]
        if "sessions" in s.within_protocols:  # corpora with sessions (IEMOCAP) only
            jobs += [Job("sessions", split) for split in within_sessions(table, corpus)]
    return jobs


def _single_source(table, corpora, languages, s, seed):
    return [Job("single_source", cross_corpus(table, [src], tgt)) for src in corpora for tgt in corpora if src != tgt]


def _target_fraction(table, corpora, languages, s, seed):
    """All other corpora as the source, plus a growing share of the target."""
    return [Job("target_fraction", target_fraction(table, [c for c in corpora if c != tgt], tgt, f, seed))
            for tgt in corpora for f in s.fractions]


def _multi_source(table, corpora, languages, s, seed):
    """Every set of `multi_source_size` other corpora spanning as many languages, tested on the target."""
    jobs = []
    for tgt in corpora:
        others = [c for c in corpora if c != tgt]
        for sources in itertools.combinations(others, s.multi_source_size):
            if len({languages[c] for c in sources}) == len(sources):
                jobs.append(Job("multi_source", cross_corpus(table, list(sources), tgt)))
    return jobs


def _leave_one_out(table, corpora, languages, s, seed):
    return [Job("leave_one_out", cross_corpus(table, [c for c in corpora if c != tgt], tgt)) for tgt in corpora]


PROTOCOLS = {
    Scenario.WITHIN: _within, Scenario.SINGLE_SOURCE: _single_source, Scenario.TARGET_FRACTION: _target_fraction,
    Scenario.MULTI_SOURCE: _multi_source, Scenario.LEAVE_ONE_OUT: _leave_one_out,
}


def feature_columns(table: pd.DataFrame) -> list[str]:
    from .features import feature_names

    return [c for c in feature_names() if c in table.columns]


RESULT_COLUMNS = ["scenario", "protocol", "model", "source", "target", "seed", "fold", "fraction", "speaker_disjoint",
                  "notes", "n_train", "accuracy", "uar", "macro_f1", "majority_rate", "n_test", "confusion", "run_id"]


@dataclass
class Runner:
    """Runs one scenario. Fitted models are reused within the run wherever the same training rows,
    unlabeled pool and seed recur (a single-source model serves every target)."""

    scenario: Scenario
    table: pd.DataFrame
    params: dict
    settings: ExperimentSettings
    progress: bool = True
    _fitted: dict = field(default_factory=dict)

    def __post_init__(self):
        self.scenario = Scenario(self.scenario)
        self.table = self.table[self.table["valence"] != "excluded"].reset_index(drop=True)
        self.features = self.table[feature_columns(self.table)].to_numpy(np.float32)
        self.corpora = list(dict.fromkeys(self.table["corpus"]))
        self.languages = self.table.groupby("corpus")["language"].first().to_dict()

    def run(self) -> pd.DataFrame:
        tracking.configure(self.settings.tracking_uri)
        experiment_id = tracking.experiment(f"crossemo-{self.scenario}")
        rows = []
        tags = {**tracking.provenance_tags(self.corpora), "scenario": str(self.scenario)}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{self.scenario}", tags=tags) as parent:
            mlflow.log_params(tracking.flatten({"experiments": _jsonable(self.settings)}))
            work = [(seed, job) for seed in self.settings.seeds for job in PROTOCOLS[self.scenario](
                self.table, self.corpora, self.languages, self.settings, seed)]
            bar = tqdm(total=len(work) * len(self.settings.models), desc=str(self.scenario), disable=not self.progress)
            for seed, job in work:
                x = self._normalized(job.split)
                for model_name in self.settings.models:
                    rows.append(self._run_one(model_name, seed, job, x, experiment_id, parent.info.run_id, tags))
                    bar.update()
            bar.close()
        if not work:
            log.warning("%s: no configuration fits these corpora (e.g. multi-source needs corpora of "
                        "several other languages)", self.scenario)
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)

    def _normalized(self, split: Split) -> np.ndarray:
        method = self.settings.normalization
        if method is not Normalization.TRAIN and hasattr(self, "_label_free"):
            return self._label_free  # corpus / speaker statistics do not depend on the split
        x = normalize(self.features, self.table, split, method)
        if method is not Normalization.TRAIN:
            self._label_free = x
        return x

    def _pool(self, x: np.ndarray, split: Split) -> np.ndarray | None:
        if self.settings.unlabeled is UnlabeledPool.NONE:
            return None
        return x[split.test] if self.settings.unlabeled is UnlabeledPool.TARGET else x

    def _run_one(self, model_name, seed, job: Job, x, experiment_id, parent_id, tags) -> dict:
        split, labels = job.split, self.table["valence"].to_numpy()
        run_tags = {**tags, "model": model_name, "protocol": job.protocol, "source": split.source,
                    "target": split.target, "seed": str(seed), "fold": str(split.fold),
                    "fraction": str(split.fraction), "speaker_disjoint": str(split.speaker_disjoint),
                    "mlflow.parentRunId": parent_id}
        name = f"{model_name} {split.source}->{split.target} seed{seed}" + (f" fold{split.fold}" if split.fold else "") \
            + (f" {split.fraction:.0%}" if split.fraction else "")
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True, tags=run_tags) as run:
            config = (self.params.get("models") or {}).get(model_name, {})
            mlflow.log_params(tracking.flatten(config))
            model = self._fit(model_name, seed, split, x, run.info.run_id)
            predicted = model.predict(x[split.test])
            scores = evaluate(labels[split.test], predicted)
            mlflow.log_metrics({k: scores[k] for k in ("accuracy", "uar", "macro_f1", "majority_rate")})
            self._log_artifacts(split, predicted, model.predict_proba(x[split.test]), scores, model)
        return {"scenario": str(self.scenario), "protocol": job.protocol, "model": model_name, "source": split.source,
                "target": split.target, "seed": seed, "fold": split.fold, "fraction": split.fraction,
                "speaker_disjoint": split.speaker_disjoint, "notes": split.notes, "n_train": len(split.train),
                **{k: v for k, v in scores.items() if k != "confusion"},
                "confusion": json.dumps(scores["confusion"]), "run_id": run.info.run_id}

    def _fit(self, model_name, seed, split: Split, x, run_id):
        from lightning.pytorch.loggers import MLFlowLogger

        from .config import model_from_params

        pool = self._pool(x, split)
        # Same model, seed, training rows and pool: the same fit. The 'all' pool is one for every split.
        pool_key = {UnlabeledPool.NONE: "none", UnlabeledPool.ALL: "all"}.get(
            self.settings.unlabeled, tracking.short_hash(split.test.tobytes().hex()))
        key = (model_name, seed, tracking.short_hash(split.train.tobytes().hex()), pool_key)
        if key in self._fitted:
            mlflow.set_tag("model_reused_from", self._fitted[key][1])
            return self._fitted[key][0]
        runtime = {}
        kind = (self.params.get("models") or {}).get(model_name, {}).get("model", model_name)
        if kind in ("dbn", "mlp", "sae_svm"):
            runtime["logger"] = MLFlowLogger(tracking_uri=self.settings.tracking_uri, run_id=run_id)
        if kind == "dbn":
            runtime["cache_dir"] = self.settings.cache_dir
        model = model_from_params(self.params, model_name, seed=seed, **runtime)
        model.fit(x[split.train], self.table["valence"].to_numpy()[split.train],
                  groups=speaker_keys(self.table).to_numpy()[split.train],
                  unlabeled=pool)
        self._fitted[key] = (model, run_id)
        return model

    def _log_artifacts(self, split: Split, predicted, proba, scores, model) -> None:
        from .report import confusion_figure

        test = self.table.iloc[split.test]
        predictions = pd.DataFrame({"corpus": test["corpus"], "utterance_id": test["utterance_id"],
                                    "speaker": test["speaker"], "true": test["valence"], "predicted": predicted,
                                    "p_negative": proba[:, 0], "p_positive": proba[:, 1]})
        with tempfile.TemporaryDirectory() as tmp:
            predictions.to_csv(Path(tmp) / "predictions.csv", index=False)
            figure = confusion_figure(np.array(scores["confusion"]), f"{split.source} -> {split.target}")
            figure.savefig(Path(tmp) / "confusion_matrix.png", dpi=80)
            import matplotlib.pyplot as plt

            plt.close(figure)
            if self.settings.log_models:
                joblib.dump(model, Path(tmp) / "model.joblib")
            mlflow.log_artifacts(tmp)


def _jsonable(settings: ExperimentSettings) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v)
            for k, v in vars(settings).items()}


def load_features(corpora: list[str], directory: str | Path = "features") -> pd.DataFrame:
    missing = [c for c in corpora if not (Path(directory) / f"{c}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"features for {missing} not found under {directory}/: run `dvc repro` first")
    return pd.concat([pd.read_parquet(Path(directory) / f"{c}.parquet") for c in corpora], ignore_index=True)
