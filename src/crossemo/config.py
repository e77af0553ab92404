"""The one reader of params.yaml: turns its sections into typed settings.

Modules receive these settings as arguments; none of them reads params.yaml itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from .corpora import LOADERS, PAPER_VALENCE, ValenceMap, audio_folder
from .errors import ConfigError, choice, settings_from
from .features import FeatureSettings
from .splits import LoneRows, Normalization

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run from the project's root, or pass --params")
    return yaml.safe_load(path.read_text()) or {}


@dataclass(frozen=True)
class CorpusConfig:
    """One entry of params.yaml's `corpora:` section."""

    name: str
    loader: str
    root: Path
    valence: ValenceMap
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.loader not in LOADERS:
            raise ConfigError(f"corpora.{self.name}.loader is {self.loader!r}; use one of {', '.join(LOADERS)}")

    @property
    def audio_root(self) -> Path:
        """What the corpus table's paths are relative to (a manifest's folder when root is the CSV)."""
        return audio_folder(self.loader, self.root)


def corpus_config(params: dict, name: str) -> CorpusConfig:
    corpora = params.get("corpora") or {}
    if name not in corpora:
        raise ConfigError(f"corpus {name!r} is not in params.yaml's corpora: {', '.join(corpora) or 'none'}")
    spec = corpora[name]
    loader = spec.get("loader", name)
    # Precedence: the corpus' own entry, then the loader's paper mapping, then the global Table 1.
    if "valence" in spec:
        valence = ValenceMap.from_dict(spec["valence"])
    elif loader in LOADERS and LOADERS[loader].valence is not None:
        valence = LOADERS[loader].valence
    else:
        valence = ValenceMap.from_dict(params["valence"]) if "valence" in params else PAPER_VALENCE
    options = dict(spec.get("options") or {})
    if spec.get("emotions"):  # a manifest's own emotion words -> canonical emotions
        if loader != "manifest":
            raise ConfigError(f"corpora.{name}.emotions maps a manifest's words; {loader} reads its own labels")
        options["emotions"] = dict(spec["emotions"])
    return CorpusConfig(name, loader, Path(spec["root"]), valence, options)


def feature_settings(params: dict) -> FeatureSettings:
    return settings_from(FeatureSettings, "features", params.get("features") or {})


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
    reuse_fits: bool = True  # a fit already logged with the same inputs and code is loaded, not redone
    cache_dir: str = ".cache/pretrained"
    workers: int = 1  # processes running fits side by side; each gets cores // workers torch threads
    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI, else the project's sqlite store
    executor: Executor = Executor.LOCAL
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


def test_only_corpora(params: dict) -> tuple[str, ...]:
    """Corpora marked `test_only: true` under corpora:: tested on, never a label in training or model selection."""
    return tuple(name for name, spec in (params.get("corpora") or {}).items() if (spec or {}).get("test_only"))


def refuse_test_only(names, test_only, what: str) -> None:
    refused = sorted(set(names) & set(test_only))
    if refused:
        raise ConfigError(
            f"{what} names {refused}, marked test_only in params.yaml's corpora: a test-only corpus never "
            "contributes a label to training or model selection; remove it there or unmark it"
        )


def trainable_corpora(params: dict, names, what: str) -> tuple[str, ...]:
    """`names` (None: every corpus not test-only), refusing a test-only corpus by name."""
    test_only = test_only_corpora(params)
    if names is None:
        return tuple(c for c in (params.get("corpora") or {}) if c not in test_only)
    refuse_test_only(names, test_only, what)
    return tuple(names)


def experiment_settings(params: dict, scenario: str):
    """The shared experiments settings plus the scenario's own section and the test-only corpora."""
    section = dict(params.get("experiments") or {})
    own = {k: v for k, v in (section.pop(scenario, None) or {}).items()}
    for name in Scenario:  # the other scenarios' own sections
        section.pop(name.value, None)
    values = {**section, **own, "test_only": test_only_corpora(params)}
    return settings_from(ExperimentSettings, f"experiments ({scenario})", values)


@dataclass(frozen=True)
class SearchSpace:
    layers: tuple[int, int] = (1, 3)
    units: tuple[int, int] = (64, 2048)  # per layer, log scale
    pretrain_learning_rate: tuple[float, float] = (1e-4, 1e-1)
    finetune_learning_rate: tuple[float, float] = (1e-4, 1e-2)
    pretrain_epochs: tuple[int, int] = (5, 500)  # log scale
    cd_steps: tuple[int, int] = (1, 3)
    batch_size: tuple[int, ...] = (32, 64, 128, 256)
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
    study_name: str = "crossemo-dbn"
    storage: str = "sqlite:///.cache/optuna.db"
    n_trials: int = 20
    timeout: float | None = None  # seconds, per worker
    validation_fraction: float = 0.25  # of the training speakers
    seed: int = 0
    finetune_max_epochs: int = 60
    finetune_patience: int = 8
    output: str = "tuning/best_params.yaml"
    space: SearchSpace = field(default_factory=SearchSpace)
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats in the storage
    grace_period: int = 90  # seconds without one before the trial counts as dead (its worker died) and is failed

    def __post_init__(self):
        object.__setattr__(self, "corpora", tuple(self.corpora))
        if isinstance(self.space, dict):
            object.__setattr__(self, "space", SearchSpace(**self.space))
        if not self.corpora:
            raise ConfigError("tuning.corpora must name at least one training corpus")


def tuning_settings(params: dict, **overrides) -> TuneSettings:
    """params.yaml's `tuning` section, with command-line overrides (None: not given)."""
    section = {**(params.get("tuning") or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return settings_from(TuneSettings, "tuning", section)


@dataclass(frozen=True)
class RegistrySettings:
    """params.yaml's `registry` section: which configuration `crossemo register` trains, on what."""

    model: str = "dbn_demo"
    corpora: tuple[str, ...] | None = None  # None: every corpus in corpora: that is not test_only
    seed: int = 0
    validation_fraction: float = 0.25  # of the speakers, held out for the version's estimate
    normalization: Normalization = Normalization.TRAIN  # as experiments.normalization; see serving.ValencePipeline
    lone_rows: LoneRows = LoneRows.POOLED  # served rows without enough rows of their speaker (corpus / speaker)
    refit: bool = True  # after the held-out estimate, refit on every labelled row: the registered weights

    def __post_init__(self):
        object.__setattr__(self, "normalization", choice(Normalization, self.normalization, "registry.normalization"))
        object.__setattr__(self, "lone_rows", choice(LoneRows, self.lone_rows, "registry.lone_rows"))
        if self.corpora is not None:
            object.__setattr__(self, "corpora", tuple(self.corpora))
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"registry.validation_fraction is {self.validation_fraction}; give a share in (0, 1)")
        if not isinstance(self.refit, bool):
            raise ConfigError(f"registry.refit is {self.refit!r}; give true or false")


def registry_settings(params: dict, **overrides) -> RegistrySettings:
    """params.yaml's `registry` section, with command-line overrides (None: not given)."""
    section = {**(params.get("registry") or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return settings_from(RegistrySettings, "registry", section)
