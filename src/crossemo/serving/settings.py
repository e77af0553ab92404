"""The registry's typed settings (params.yaml's registry: section), built by `crossemo.config`."""

from __future__ import annotations

from dataclasses import dataclass

from crossemo.errors import ConfigError, choice, settings_from
from crossemo.experiments.normalization import LoneRows, Normalization


@dataclass(frozen=True)
class RegistrySettings:
    """params.yaml's `registry` section: which configuration `crossemo register` trains, on what."""

    model: str = "dbn_demo"  # a configuration under models: to train and register
    corpora: tuple[str, ...] | None = None  # None: every corpus in corpora: that is not test_only
    seed: int = 0  # seeds the fits and the held-out speakers
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
