"""Domain adaptation: the target corpus' unlabeled rows shape the model, label-free.

CORAL (CORrelation ALignment; Sun, Feng and Saenko 2016): the training features are whitened with
their own covariance and re-coloured with the target rows' covariance, so a model of any kind (the
SVMs included) learns on rows whose second-order statistics are the target's. The target rows are
the unlabeled rows a fit is given (`experiments.unlabeled: target` makes them the test corpus' own);
their labels are never read.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from scipy import linalg

from crossemo.errors import ConfigError
from crossemo.models.estimator import ValenceModel


class Adaptation(StrEnum):
    """A model configuration's `adaptation`: what it does with the target's unlabeled rows."""

    NONE = "none"  # nothing: the model learns from the training rows alone
    CORAL = "coral"  # training rows re-coloured with the target rows' covariance (every model)


def coral_matrix(source: np.ndarray, target: np.ndarray, regularisation: float = 1.0) -> np.ndarray:
    """A such that (source - mean) @ A has the target's covariance: Cs^-1/2 Ct^1/2, each covariance
    plus `regularisation` x I (the paper's choice, 1: keeps a near-singular covariance invertible)."""
    eye = np.eye(source.shape[1])
    c_source = np.cov(source, rowvar=False) + regularisation * eye
    c_target = np.cov(target, rowvar=False) + regularisation * eye
    whiten = linalg.fractional_matrix_power(c_source, -0.5)
    colour = linalg.fractional_matrix_power(c_target, 0.5)
    return np.real(whiten @ colour)


class CoralAdapted(ValenceModel):
    """`model` fitted on training rows aligned to the target rows' covariance (CORAL). Prediction
    takes target rows as they are. Needs the target's rows as `unlabeled` in fit."""

    def __init__(self, model: ValenceModel, regularisation: float = 1.0):
        self.model, self.regularisation = model, regularisation

    @property
    def needs_unlabeled_pool(self) -> bool:
        """As the wrapped model (a DBN pretrained on a pool alone shares its stack with the others)."""
        return self.model.needs_unlabeled_pool

    def prepare_stack(self, unlabeled):
        """The wrapped DBN's stack, pretrained ahead of the fits (the runner's warm-ups)."""
        return self.model.prepare_stack(unlabeled)

    @property
    def learns_from_unlabeled(self) -> bool:
        return True

    def _fit(self, x, y, groups, unlabeled):
        if unlabeled is None or len(unlabeled) < 2:
            raise ConfigError(
                "adaptation: coral needs the target's unlabeled rows: set experiments.unlabeled: target "
                "(or all), or in transfer target_audio: used"
            )
        mean = x.mean(0)
        self.matrix_ = coral_matrix(x, unlabeled, self.regularisation).astype(np.float32)
        aligned = ((x - mean) @ self.matrix_ + mean).astype(np.float32)
        self.model.fit(aligned, np.where(y == 1, "positive", "negative"), groups=groups, unlabeled=unlabeled)

    def _proba(self, x):
        return self.model.predict_proba(x)

    def _decide(self, x):
        return self.model._decide(x)


def adapted(model: ValenceModel, adaptation: str | Adaptation, key: str) -> ValenceModel:
    """`model` with its configuration's adaptation; an unknown method is refused naming the key."""
    if adaptation not in set(Adaptation):
        raise ConfigError(f"{key} is {adaptation!r}; use one of {', '.join(Adaptation)}")
    return CoralAdapted(model) if Adaptation(adaptation) is Adaptation.CORAL else model
