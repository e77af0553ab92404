"""The one reader of params.yaml: turns its sections into typed settings.

Modules receive these settings as arguments; none of them reads params.yaml itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from .corpora import LOADERS, PAPER_VALENCE, ValenceMap
from .errors import ConfigError
from .features import FeatureSettings
from .splits import Normalization

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
    return CorpusConfig(name, loader, Path(spec["root"]), valence, dict(spec.get("options") or {}))


def _settings(cls, section: str, values: dict):
    """A settings dataclass from a params.yaml section; an unknown key or value names the section."""
    try:
        return cls(**values)
    except TypeError as error:  # an unknown key: a typo in params.yaml
        raise ConfigError(f"{section}: {error}".replace(f"{cls.__name__}.__init__() ", "")) from None
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{section}: {error}") from None  # e.g. an enum value: 'x' is not a valid Normalization


def feature_settings(params: dict) -> FeatureSettings:
    return _settings(FeatureSettings, "features", params.get("features") or {})


class Scenario(StrEnum):
    """The paper's scenarios, named once: dvc.yaml's `experiment` stages and the CLI follow this list."""

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
    workers: int = 1  # processes running fits side by side; each gets cores // workers torch threads
    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI, else the project's sqlite store

    def __post_init__(self):
        object.__setattr__(self, "normalization", Normalization(self.normalization))
        object.__setattr__(self, "unlabeled", UnlabeledPool(self.unlabeled))
        for name in ("models", "seeds", "within_protocols", "fractions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = set(self.within_protocols) - {"random", "speaker", "sessions"}
        if unknown:
            raise ConfigError(f"experiments.within_protocols: unknown {sorted(unknown)}; use random, speaker, sessions")
        if self.workers < 1:
            raise ConfigError(f"experiments.workers must be at least 1, not {self.workers}")
        if not self.models or not self.seeds:
            raise ConfigError("experiments.models and experiments.seeds must not be empty")


def experiment_settings(params: dict, scenario: str):
    """The shared experiments settings plus the scenario's own section."""
    section = dict(params.get("experiments") or {})
    own = {k: v for k, v in (section.pop(scenario, None) or {}).items()}
    for name in Scenario:  # the other scenarios' own sections
        section.pop(name.value, None)
    return _settings(ExperimentSettings, f"experiments ({scenario})", {**section, **own})
