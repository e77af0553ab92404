"""The one reader of params.yaml, and its corpora: and features: sections as typed settings.

Each layer types its own sections from the loaded params (`crossemo.experiments.settings`,
`crossemo.serving.settings`); modules receive settings as arguments, none reads params.yaml itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crossemo.data.corpora import LOADERS, PAPER_VALENCE, ValenceMap, audio_folder, load_corpus
from crossemo.data.features import FeatureSettings
from crossemo.errors import ConfigError, settings_from

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

    def load(self) -> pd.DataFrame:
        """The corpus table, read by its loader with this entry's valence mapping and options."""
        return load_corpus(self.loader, self.root, valence=self.valence, corpus=self.name, **self.options)


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


def test_only_corpora(params: dict) -> tuple[str, ...]:
    """Corpora marked `test_only: true` under corpora:: tested on, never a label in training or model selection."""
    return tuple(name for name, spec in (params.get("corpora") or {}).items() if (spec or {}).get("test_only"))


def trainable_corpora(params: dict, names, what: str) -> tuple[str, ...]:
    """`names` (None: every corpus not test-only), refusing a test-only corpus by name."""
    test_only = test_only_corpora(params)
    if names is None:
        return tuple(c for c in (params.get("corpora") or {}) if c not in test_only)
    refuse_test_only(names, test_only, what)
    return tuple(names)


def refuse_test_only(names, test_only, what: str) -> None:
    refused = sorted(set(names) & set(test_only))
    if refused:
        raise ConfigError(
            f"{what} names {refused}, marked test_only in params.yaml's corpora: a test-only corpus never "
            "contributes a label to training or model selection; remove it there or unmark it"
        )
