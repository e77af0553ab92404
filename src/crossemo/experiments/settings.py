"""The experiments' typed settings (params.yaml's experiments: and tuning: sections), built by
`crossemo.config`: scenarios, pools, executors, and the Optuna search space."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum

from crossemo.config import refuse_test_only, test_only_corpora
from crossemo.errors import ConfigError, choice, settings_from
from crossemo.experiments.normalization import Normalization


class Scenario(StrEnum):
    """The paper's scenarios, named once: dvc.yaml's `experiment` stages and the CLI follow this list."""

    WITHIN = "within"
    SINGLE_SOURCE = "single_source"
    TARGET_FRACTION = "target_fraction"
    MULTI_SOURCE = "multi_source"
    LEAVE_ONE_OUT = "leave_one_out"
    TRANSFER = "transfer"  # named training corpora -> test-only corpora, with and without their audio


class UnlabeledPool(StrEnum):
    """Which label-free feature rows each fit may use for unsupervised learning."""

    NONE = "none"
    TARGET = "target"  # the test corpus' own rows (their features, never their labels)
    ALL = "all"  # every row of every corpus: one shared pool, so one cached RBM stack per seed


class TargetAudio(StrEnum):
    """Whether the transfer scenario may use a test corpus' audio (never its labels)."""

    UNSEEN = "unseen"  # not at all: its rows are standardised with the training rows' statistics, never pretrained on
    STATISTICS = "statistics"  # its label-free statistics standardise it, as `crossemo evaluate` does a new
    # corpus, but its rows join no unlabeled pool: the fits are unseen's, only the test rows' scaling differs
    USED = "used"  # its label-free statistics standardise it and its rows may join the unlabeled pool

    @property
    def pooled(self) -> bool:
        """Whether the test corpus' rows may join the unlabeled pool."""
        return self is TargetAudio.USED


class Executor(StrEnum):
    """Where a scenario's units of work run; the results are the same on either."""

    LOCAL = "local"  # `workers` processes on this machine
    DASK = "dask"  # an existing dask.distributed cluster (scheduler_address or DASK_SCHEDULER_ADDRESS)


@dataclass(frozen=True)
class ExperimentSettings:
    models: tuple[str, ...]  # names under models: to run
    seeds: tuple[int, ...] = (0, 1, 2)  # every fit is repeated per seed; intervals are over seeds
    # train: the training rows' statistics; corpus / speaker: each one's own, label-free
    normalization: Normalization = Normalization.CORPUS
    # label-free rows a fit may learn from: none, target (the test corpus), all (every corpus)
    unlabeled: UnlabeledPool = UnlabeledPool.ALL
    # random: the paper's 75/25; speaker: speaker-grouped folds; sessions: IEMOCAP's two
    within_protocols: tuple[str, ...] = ("random", "speaker")
    test_size: float = 0.25  # the random protocol's test share
    speaker_folds: int = 5  # speaker-grouped folds (leave one speaker out when a corpus has no more speakers)
    # target_fraction: shares of the target corpus added to training
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    multi_source_size: int = 2  # multi_source: corpora per training set, each of another language
    log_models: bool = True  # log each fitted model as an MLflow artifact (fit reuse needs it)
    reuse_fits: bool = True  # a fit already logged with the same inputs and code is loaded, not redone
    cache_dir: str = ".cache/pretrained"  # pretrained RBM stacks, keyed by their inputs and code
    workers: int = 1  # processes running fits side by side; each gets cores // workers torch threads
    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI, else the project's sqlite store
    executor: Executor = Executor.LOCAL  # local: `workers` processes here; dask: an existing Dask cluster
    scheduler_address: str | None = None  # Dask scheduler; None: DASK_SCHEDULER_ADDRESS
    test_only: tuple[str, ...] = ()  # corpora marked test_only: never a label in training (from corpora:)
    train_corpora: tuple[str, ...] | None = None  # transfer: None = every corpus not tested on
    test_corpora: tuple[str, ...] | None = None  # transfer: None = the test-only corpora
    target_audio: tuple[TargetAudio, ...] = (TargetAudio.UNSEEN, TargetAudio.USED)  # transfer: each way in turn

    def __post_init__(self):
        normalization = choice(Normalization, self.normalization, "experiments.normalization")
        object.__setattr__(self, "normalization", normalization)
        audio = tuple(choice(TargetAudio, a, "experiments.transfer.target_audio") for a in self.target_audio)
        object.__setattr__(self, "target_audio", audio)
        for name in ("test_only", "train_corpora", "test_corpora"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        refuse_test_only(self.train_corpora or (), self.test_only, "experiments.transfer.train_corpora")
        object.__setattr__(self, "unlabeled", choice(UnlabeledPool, self.unlabeled, "experiments.unlabeled"))
        object.__setattr__(self, "executor", choice(Executor, self.executor, "experiments.executor"))
        for name in ("models", "seeds", "within_protocols", "fractions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = set(self.within_protocols) - {"random", "speaker", "sessions"}
        if unknown:
            raise ConfigError(f"experiments.within_protocols: unknown {sorted(unknown)}; use random, speaker, sessions")
        if self.workers < 1:
            raise ConfigError(f"experiments.workers must be at least 1, not {self.workers}")
        if not self.models or not self.seeds:
            raise ConfigError("experiments.models and experiments.seeds must not be empty")


@dataclass(frozen=True)
class SearchSpace:
    layers: tuple[int, int] = (1, 3)  # [low, high] hidden layers
    units: tuple[int, int] = (64, 2048)  # per layer, log scale
    pretrain_learning_rate: tuple[float, float] = (1e-4, 1e-1)  # [low, high], log scale
    finetune_learning_rate: tuple[float, float] = (1e-4, 1e-2)  # [low, high], log scale
    pretrain_epochs: tuple[int, int] = (5, 500)  # log scale
    cd_steps: tuple[int, int] = (1, 3)  # [low, high] contrastive-divergence steps
    batch_size: tuple[int, ...] = (32, 64, 128, 256)  # choices, for pretraining and fine-tuning alike
    # dbn_best's levers (reports/real-corpora/selection); the defaults leave them out of the search
    dropout: tuple[float, float] = (0.0, 0.0)
    weight_decay: tuple[float, ...] = (0.0,)  # choices: 0 has no log scale
    ensemble: tuple[int, int] = (1, 1)  # members fine-tuned from the one stack, each on its own held-out speakers

    def __post_init__(self):
        for name in (f.name for f in fields(self)):  # every range is a tuple (params.yaml gives lists)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not 0.0 <= self.dropout[0] <= self.dropout[1] < 1.0:
            raise ConfigError(f"tuning.space.dropout is {list(self.dropout)}; give [low, high], 0 <= low <= high < 1")
        if self.ensemble[0] < 1:
            raise ConfigError(f"tuning.space.ensemble is {list(self.ensemble)}; an ensemble has at least 1 member")

    def sample(self, trial) -> dict:
        """A configuration drawn through an Optuna trial (its suggest_* methods)."""
        layers = trial.suggest_int("layers", *self.layers)
        hidden = [trial.suggest_int(f"units_{i}", *self.units, log=True) for i in range(layers)]
        batch = trial.suggest_categorical("batch_size", list(self.batch_size))
        return {
            "hidden": hidden,
            "pretrain": {
                "learning_rate": trial.suggest_float("pretrain_learning_rate", *self.pretrain_learning_rate, log=True),
                "epochs": trial.suggest_int("pretrain_epochs", *self.pretrain_epochs, log=True),
                "cd_steps": trial.suggest_int("cd_steps", *self.cd_steps),
                "batch_size": batch,
            },
            "finetune": {
                "learning_rate": trial.suggest_float("finetune_learning_rate", *self.finetune_learning_rate, log=True),
                "batch_size": batch,
                "dropout": trial.suggest_float("dropout", *self.dropout),
                "weight_decay": trial.suggest_categorical("weight_decay", list(self.weight_decay)),
            },
            "ensemble": trial.suggest_int("ensemble", *self.ensemble),
        }


@dataclass(frozen=True)
class TuneSettings:
    corpora: tuple[str, ...]  # training corpora; never the target test corpus
    study_name: str = "crossemo-dbn"  # the Optuna study (resumable, shared by workers)
    storage: str = "sqlite:///.cache/optuna.db"  # any Optuna RDB URL: sqlite:///..., postgresql://..., mysql://...
    n_trials: int = 20  # finished trials to reach in all
    timeout: float | None = None  # seconds, per worker
    validation_fraction: float = 0.25  # of the training speakers
    seed: int = 0  # seeds the sampler and the validation split
    finetune_max_epochs: int = 60  # each trial's fine-tuning budget
    finetune_patience: int = 8  # epochs without a better validation loss before a trial's fine-tuning stops
    output: str = "tuning/best_params.yaml"  # where the best trial is written as a models: entry (dbn_tuned)
    space: SearchSpace = field(default_factory=SearchSpace)
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats in the storage
    grace_period: int = 90  # seconds without one before the trial counts as dead (its worker died) and is failed

    def __post_init__(self):
        object.__setattr__(self, "corpora", tuple(self.corpora))
        if isinstance(self.space, dict):
            object.__setattr__(self, "space", SearchSpace(**self.space))
        if not self.corpora:
            raise ConfigError("tuning.corpora must name at least one training corpus")


def experiment_settings(params: dict, scenario: str):
    """The shared experiments settings plus the scenario's own section and the test-only corpora."""
    section = dict(params.get("experiments") or {})
    own = {k: v for k, v in (section.pop(scenario, None) or {}).items()}
    for name in Scenario:  # the other scenarios' own sections
        section.pop(name.value, None)
    values = {**section, **own, "test_only": test_only_corpora(params)}
    return settings_from(ExperimentSettings, f"experiments ({scenario})", values)


def tuning_settings(params: dict, **overrides) -> TuneSettings:
    """params.yaml's `tuning` section, with command-line overrides (None: not given)."""
    section = {**(params.get("tuning") or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return settings_from(TuneSettings, "tuning", section)
