"""Valence models behind one interface: fit on features and labels, predict labels and probabilities.

Estimators in scikit-learn's manner: `__init__` only stores hyperparameters, `fit` learns, and
learned state ends in `_`. The experiments swap them by name (`MODELS`) from params.yaml.
"""

from __future__ import annotations

import logging
import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .dbn import FeedForward, FinetuneSettings, PretrainSettings, finetune, pretrain_stack

log = logging.getLogger(__name__)

CLASSES = np.array(["negative", "positive"])


def encode(labels) -> np.ndarray:
    labels = np.asarray(labels).astype(str)
    unknown = set(labels) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown valence labels {sorted(unknown)}; expected {list(CLASSES)} (drop 'excluded' rows first)")
    return (labels == "positive").astype(np.int64)


def validation_split(y: np.ndarray, groups, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices; speaker-disjoint whenever there are at least two speakers."""
    index = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 2:
        split = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(split.split(index, y, groups))
    log.warning("no speaker groups: the validation split is random, not speaker-disjoint")
    return next(StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(index, y))


class ValenceModel:
    """The shared interface. Subclasses implement `_fit(x, y, groups, unlabeled)` and `_proba(x)`."""

    classes_ = CLASSES

    def fit(self, X, y, groups=None, unlabeled=None) -> ValenceModel:
        """X: features (rows: utterances); y: 'negative'/'positive'; groups: speakers (for validation);
        unlabeled: extra feature rows (any corpus, target included) for unsupervised pretraining."""
        x = np.asarray(X, dtype=np.float32)
        self.scaler_ = StandardScaler().fit(x)  # statistics of the training features only
        extra = None if unlabeled is None or len(unlabeled) == 0 else self._scale(unlabeled)
        self._fit(self._scale(x), encode(y), None if groups is None else np.asarray(groups), extra)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Columns in the order of `classes_`: p(negative), p(positive)."""
        return self._proba(self._scale(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def _scale(self, X) -> np.ndarray:
        return self.scaler_.transform(np.asarray(X, dtype=np.float32)).astype(np.float32)

    def get_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}


def calibrated_svm(C: float = 1.0, kernel: str = "rbf", seed: int = 0) -> CalibratedClassifierCV:
    """A class-balanced SVM with probabilities from cross-validated calibration (sklearn's successor
    of SVC(probability=True))."""
    svm = SVC(C=C, kernel=kernel, class_weight="balanced", random_state=seed)
    return CalibratedClassifierCV(svm, ensemble=False)


class SVMValence(ValenceModel):
    """eGeMAPS + SVM: the field's standard baseline since Schuller et al."""

    def __init__(self, C: float = 1.0, kernel: str = "rbf", seed: int = 0):
        self.C, self.kernel, self.seed = C, kernel, seed

    def _fit(self, x, y, groups, unlabeled):
        self.svm_ = calibrated_svm(C=self.C, kernel=self.kernel, seed=self.seed).fit(x, y)

    def _proba(self, x):
        return self.svm_.predict_proba(x)


class DBNValence(ValenceModel):
    """RBM stack pretrained greedily with contrastive divergence, then fine-tuned with labels."""

    def __init__(self, hidden=(1000, 1000, 2000), pretrain: PretrainSettings | dict | None = None,
                 finetune: FinetuneSettings | dict | None = None, use_unlabeled: bool = True,
                 seed: int = 0, progress: bool = False, logger=None):
        self.hidden, self.pretrain, self.finetune = tuple(hidden), pretrain, finetune
        self.use_unlabeled, self.seed, self.progress, self.logger = use_unlabeled, seed, progress, logger

    def _settings(self) -> tuple[PretrainSettings, FinetuneSettings]:
        pre = self.pretrain if isinstance(self.pretrain, PretrainSettings) else PretrainSettings(**(self.pretrain or {}))
        fine = self.finetune if isinstance(self.finetune, FinetuneSettings) else FinetuneSettings(**(self.finetune or {}))
        return pre, fine

    def _pretrained_net(self, x_pre: np.ndarray, x_monitor: np.ndarray) -> FeedForward:
        pre, fine = self._settings()
        stack = pretrain_stack(torch.from_numpy(x_pre), self.hidden, pre, torch.from_numpy(x_monitor),
                               self.logger, self.progress, self.seed)
        self.stack_ = stack
        return FeedForward.from_stack(stack, dropout=fine.dropout)

    def _fit(self, x, y, groups, unlabeled):
        _, fine = self._settings()
        train, val = validation_split(y, groups, fine.validation_fraction, self.seed)
        # Pretraining sees no validation rows, so early stopping judges unseen speakers.
        x_pre = x[train] if unlabeled is None or not self.use_unlabeled else np.concatenate([x[train], unlabeled])
        net = self._pretrained_net(x_pre, x[val])
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        self.net_ = finetune(net, t(x[train]), t(y[train]), t(x[val]), t(y[val]), fine, self.logger,
                             self.progress, self.seed)

    @torch.no_grad()
    def _proba(self, x):
        return torch.softmax(self.net_(torch.from_numpy(x)), dim=1).numpy()


class FeedForwardValence(DBNValence):
    """The same network without pretraining: does pretraining help?"""

    def _pretrained_net(self, x_pre, x_monitor):
        _, fine = self._settings()
        torch.manual_seed(self.seed)
        return FeedForward(x_pre.shape[1], self.hidden, dropout=fine.dropout)


def model_registry() -> dict[str, type[ValenceModel]]:
    """Model names as params.yaml uses them."""
    from .baselines import SparseAutoencoderSVM  # imports this module: resolve at call time

    return {"dbn": DBNValence, "mlp": FeedForwardValence, "svm": SVMValence, "sae_svm": SparseAutoencoderSVM}


def make_model(name: str, **params) -> ValenceModel:
    registry = model_registry()
    if name not in registry:
        raise ValueError(f"unknown model {name!r}; use one of {', '.join(registry)}")
    return registry[name](**params)
