"""Domain adaptation: the target corpus' unlabeled rows shape the model, label-free.

The target rows are the unlabeled rows a fit is given (`experiments.unlabeled: target` makes them the
test corpus' own; transfer's `target_audio: used` too); their labels are never read.

- CORAL (CORrelation ALignment; Sun, Feng and Saenko 2016): the training features are whitened with
  their own covariance and re-coloured with the target rows' covariance, so a model of any kind (the
  SVMs included) learns on rows whose second-order statistics are the target's.
- DANN (domain-adversarial training; Ganin et al. 2016): while a network fine-tunes, a domain
  classifier on its top hidden layer learns which corpus a row comes from (each training corpus and
  the target), behind a gradient-reversal layer: the hidden layers learn to make that impossible.
  The loop is `crossemo.models.training`; here are its settings and the reversal itself.
- Self-training: after a first fit, the target rows the model is surest of join the training rows
  with the labels it gave them, as many of each class, and the model is fitted again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from scipy import linalg

from crossemo.errors import ConfigError, choice, settings_from
from crossemo.models.estimator import ValenceModel


class Adaptation(StrEnum):
    """A model configuration's `adaptation`: what it does with the target's unlabeled rows."""

    NONE = "none"  # nothing: the model learns from the training rows alone
    CORAL = "coral"  # training rows re-coloured with the target rows' covariance (every model)
    DANN = "dann"  # a domain classifier behind gradient reversal during fine-tuning (dbn, mlp)
    SELF_TRAINING = "self_training"  # refits with the target rows it is surest of, pseudo-labelled (every model)


@dataclass(frozen=True)
class CoralSettings:
    """`models.<name>.coral`."""

    regularisation: float = 1.0  # added to both covariances' diagonals (the paper's 1: keeps them invertible)

    def __post_init__(self):
        if self.regularisation < 0:
            raise ConfigError(f"coral.regularisation is {self.regularisation}; use 0 or more")


@dataclass(frozen=True)
class DannSettings:
    """`models.<name>.dann`: the domain classifier and its weight's schedule (Ganin et al. 2016)."""

    weight: float = 1.0  # the domain loss' weight at the end of fine-tuning; it rises from 0 as 2/(1+e^(-gamma p))-1
    gamma: float = 10.0  # steepness of that rise over the training's progress p (0..1 of max_epochs); paper: 10
    hidden: int = 128  # units in the domain classifier's hidden layer (ReLU)

    def __post_init__(self):
        if self.weight <= 0:
            raise ConfigError(f"dann.weight is {self.weight}; use a weight above 0 (adaptation: none for no DANN)")
        if self.hidden < 1:
            raise ConfigError(f"dann.hidden is {self.hidden}; use at least 1 unit")

    def weight_at(self, progress: float) -> float:
        """The domain loss' weight at `progress` (0 at the start of fine-tuning, 1 at max_epochs)."""
        return self.weight * (2.0 / (1.0 + math.exp(-self.gamma * min(max(progress, 0.0), 1.0))) - 1.0)


@dataclass(frozen=True)
class SelfTrainingSettings:
    """`models.<name>.self_training`."""

    rounds: int = 2  # refits after the first fit, each with more pseudo-labelled target rows
    share: float = 0.4  # of the target rows, pseudo-labelled by the last round (reached in equal steps)

    def __post_init__(self):
        if self.rounds < 1:
            raise ConfigError(f"self_training.rounds is {self.rounds}; use at least 1")
        if not 0 < self.share <= 1:
            raise ConfigError(f"self_training.share is {self.share}; use a fraction of the target rows in (0, 1]")


#: Each method's options key in a model configuration and its settings class.
OPTIONS = {
    Adaptation.CORAL: CoralSettings,
    Adaptation.DANN: DannSettings,
    Adaptation.SELF_TRAINING: SelfTrainingSettings,
}


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.neg() * ctx.scale, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The identity forwards; backwards, the gradient negated and scaled (Ganin's gradient-reversal
    layer): what lowers the domain classifier's loss raises it for the layers below."""
    return _ReverseGradient.apply(x, scale)


def domain_labels(groups, n_rows: int) -> tuple[np.ndarray, int]:
    """Each training row's domain (its corpus: the 'corpus/' of its speaker key; one domain without
    keys) and the target's domain number, the last."""
    if groups is None:
        return np.zeros(n_rows, dtype=np.int64), 1
    corpora = np.array([key.split("/", 1)[0] if "/" in key else "" for key in np.asarray(groups).astype(str)])
    names, domains = np.unique(corpora, return_inverse=True)
    return domains.astype(np.int64), len(names)


def require_target_rows(unlabeled, method: str) -> None:
    if unlabeled is None or len(unlabeled) < 2:
        raise ConfigError(
            f"adaptation: {method} needs the target's unlabeled rows: set experiments.unlabeled: target, "
            "or in transfer target_audio: used (crossemo register / evaluate: --adapt)"
        )


def coral_matrix(source: np.ndarray, target: np.ndarray, regularisation: float = 1.0) -> np.ndarray:
    """A such that (source - mean) @ A has the target's covariance: Cs^-1/2 Ct^1/2, each covariance
    plus `regularisation` x I (the paper's choice, 1: keeps a near-singular covariance invertible)."""
    eye = np.eye(source.shape[1])
    c_source = np.cov(source, rowvar=False) + regularisation * eye
    c_target = np.cov(target, rowvar=False) + regularisation * eye
    whiten = linalg.fractional_matrix_power(c_source, -0.5)
    colour = linalg.fractional_matrix_power(c_target, 0.5)
    return np.real(whiten @ colour)


class Wrapped(ValenceModel):
    """A method around another model (`model`): it learns from the target rows, answers as the model
    answers, and lets the runner pretrain the model's shared stack ahead of the fits."""

    model: ValenceModel

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

    def _proba(self, x):
        return self.model.predict_proba(x)

    def _decide(self, x):
        return self.model._decide(x)


class CoralAdapted(Wrapped):
    """`model` fitted on training rows aligned to the target rows' covariance (CORAL). Prediction
    takes target rows as they are. Needs the target's rows as `unlabeled` in fit."""

    def __init__(self, model: ValenceModel, regularisation: float = 1.0):
        self.model, self.regularisation = model, regularisation

    def _fit(self, x, y, groups, unlabeled):
        require_target_rows(unlabeled, Adaptation.CORAL)
        mean = x.mean(0)
        self.matrix_ = coral_matrix(x, unlabeled, self.regularisation).astype(np.float32)
        aligned = ((x - mean) @ self.matrix_ + mean).astype(np.float32)
        self.model.fit(aligned, np.where(y == 1, "positive", "negative"), groups=groups, unlabeled=unlabeled)


class SelfTrained(Wrapped):
    """`model` fitted, then refitted `rounds` times on the training rows plus the target rows it is
    surest of, with its own decisions as their labels: each round a larger share (share / rounds
    more), as many rows of each class (the confidence ranks rows within the class decided)."""

    def __init__(self, model: ValenceModel, rounds: int = 2, share: float = 0.4):
        self.model, self.rounds, self.share = model, rounds, share

    def _fit(self, x, y, groups, unlabeled):
        require_target_rows(unlabeled, Adaptation.SELF_TRAINING)
        labels = np.where(y == 1, "positive", "negative")
        self.model.fit(x, labels, groups=groups, unlabeled=unlabeled)
        self.pseudo_counts_ = []
        for round_ in range(1, self.rounds + 1):
            chosen, decided = confident_rows(self.model, unlabeled, self.share * round_ / self.rounds)
            self.pseudo_counts_.append(len(chosen))
            self.model.fit(
                np.concatenate([x, unlabeled[chosen]]),
                np.concatenate([labels, self.model.classes_[decided]]),
                # one more "speaker" for a network's speaker-disjoint early stopping
                groups=None if groups is None else np.concatenate([groups, np.full(len(chosen), "target/pseudo")]),
                unlabeled=unlabeled,
            )


def confident_rows(model: ValenceModel, rows: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the `share` of `rows` the model is surest of, half per class it decides (its own
    decision rule; ranked by the probability of that class), and the classes decided for them."""
    decided = model._decide(rows)
    confidence = model.predict_proba(rows)[np.arange(len(rows)), decided]
    # as many of each class: no more than the class decided less often has (a one-sided pseudo-labelled
    # set would pull the refit towards that class)
    per_class = min(int(share * len(rows) / 2), *(int((decided == label).sum()) for label in (0, 1)))
    chosen = []
    for label in (0, 1):
        of_class = np.flatnonzero(decided == label)
        chosen.append(of_class[np.argsort(-confidence[of_class], kind="stable")[:per_class]])
    positions = np.sort(np.concatenate(chosen))
    return positions, decided[positions]


def adapted(model: ValenceModel, adaptation: str | Adaptation, options: dict | None, key: str) -> ValenceModel:
    """`model` with its configuration's adaptation (`key`: models.<name>.adaptation) and the method's
    options; an unknown method, or one the model cannot take, is refused naming the key."""
    method = choice(Adaptation, adaptation, key)
    if method is Adaptation.NONE:
        if options:
            raise ConfigError(f"{key} is none but options for {', '.join(options)} are set: remove them")
        return model
    section = key.rsplit(".", 1)[0] + f".{method}"
    settings = settings_from(OPTIONS[method], section, (options or {}).get(str(method)) or {})
    stray = set(options or {}) - {str(method)}
    if stray:
        raise ConfigError(f"{key} is {method} but options for {', '.join(sorted(stray))} are set: remove them")
    if method is Adaptation.CORAL:
        return CoralAdapted(model, settings.regularisation)
    if method is Adaptation.SELF_TRAINING:
        return SelfTrained(model, settings.rounds, settings.share)
    if "dann" not in model.get_params():  # the DANN loop trains a network's hidden layers
        raise ConfigError(f"{key} is dann, which trains a network's hidden layers: use it with model dbn or mlp")
    return model.set_params(dann=settings)
