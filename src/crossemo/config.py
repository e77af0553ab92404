"""The one reader of params.yaml: turns its sections into typed settings.

Modules receive these settings as arguments; none of them reads params.yaml itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .corpora import LOADERS, PAPER_VALENCE, ValenceMap
from .features import FeatureSettings

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
            raise ValueError(f"corpora.{self.name}.loader is {self.loader!r}; use one of {', '.join(LOADERS)}")


def corpus_config(params: dict, name: str) -> CorpusConfig:
    corpora = params.get("corpora") or {}
    if name not in corpora:
        raise KeyError(f"corpus {name!r} is not in params.yaml's corpora: {', '.join(corpora) or 'none'}")
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


def feature_settings(params: dict) -> FeatureSettings:
    return FeatureSettings(**(params.get("features") or {}))


def model_from_params(params: dict, name: str, seed: int = 0, **runtime):
    """A fresh, unfitted model from params.yaml's `models.<name>` (runtime: progress, logger)."""
    from .models import make_model

    configs = params.get("models") or {}
    if name not in configs:
        raise KeyError(f"model configuration {name!r} is not in params.yaml's models: {', '.join(configs) or 'none'}")
    spec = dict(configs[name])
    kind = spec.pop("model", name)
    return make_model(kind, seed=seed, **spec, **runtime)


def experiment_settings(params: dict, scenario: str):
    """The shared experiments settings plus the scenario's own section."""
    from .experiments import ExperimentSettings

    section = dict(params.get("experiments") or {})
    own = {k: v for k, v in (section.pop(scenario, None) or {}).items()}
    for name in ("within", "single_source", "target_fraction", "multi_source", "leave_one_out"):
        section.pop(name, None)
    return ExperimentSettings(**section, **own)
