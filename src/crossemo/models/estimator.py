"""The interface every valence model shares, in scikit-learn's manner: `__init__` only stores
hyperparameters, `fit` learns, learned state ends in `_`, and `get_params` gives what `__init__` took."""

from __future__ import annotations

import inspect

import numpy as np

from crossemo.errors import UserError
from crossemo.models.labels import CLASSES


def encode(labels) -> np.ndarray:
    labels = np.asarray(labels).astype(str)
    unknown = set(labels) - set(CLASSES)
    if unknown:
        raise UserError(
            f"unknown valence labels {sorted(unknown)}; expected {list(CLASSES)} (drop 'excluded' rows first)"
        )
    return (labels == "positive").astype(np.int64)


class ValenceModel:
    """The shared interface. Subclasses implement `_fit(x, y, groups, unlabeled)` and `_proba(x)`.

    Inputs are expected standardised: normalisation is a named choice of the experiment
    (`crossemo.experiments.normalization.Normalization`), not something each model does its own way.
    """

    classes_ = CLASSES

    @property
    def needs_unlabeled_pool(self) -> bool:
        """Whether fit must be given unlabeled rows (a DBN pretrained on a pool alone)."""
        return False

    @property
    def learns_from_unlabeled(self) -> bool:
        """Whether the unlabeled rows given to fit change the fitted model (else fit ignores them)."""
        return False

    def fit(self, X, y, groups=None, unlabeled=None) -> ValenceModel:
        """X: features (rows: utterances); y: 'negative'/'positive'; groups: speakers (for validation);
        unlabeled: extra feature rows (any corpus, target included) for unsupervised learning."""
        x = _floats(X)
        extra = None if unlabeled is None or len(unlabeled) == 0 else _floats(unlabeled)
        self._fit(x, encode(y), None if groups is None else np.asarray(groups), extra)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Columns in the order of `classes_`: p(negative), p(positive)."""
        return self._proba(_floats(X))

    def predict(self, X) -> np.ndarray:
        """Labels from the model's own decision rule (`_decide`): by default the likelier class; an
        SVM overrides it with its class-balanced decision function, which calibrated probabilities
        would move towards the training prior."""
        return self.classes_[self._decide(_floats(X))]

    def _decide(self, x: np.ndarray) -> np.ndarray:
        return self._proba(x).argmax(1)

    #: What a model may be handed at construction besides its hyperparameters, if the caller has it:
    #: "logger" (per-epoch curves), "stack_store" (pretrained stacks), "progress", "callbacks".
    RUNTIME: frozenset[str] = frozenset()

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments as stored (sklearn.base.clone builds a fresh, unfitted copy from them)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> ValenceModel:
        """Change hyperparameters as scikit-learn does, checked and converted as `__init__` does it
        (an enum's string becomes its member; a bad value or an unknown name is refused)."""
        current = self.get_params(deep=False)
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter {unknown}; its parameters: {sorted(current)}")
        type(self).__init__(self, **{**current, **params})
        return self

    _not_pickled: tuple[str, ...] = ()

    def __getstate__(self):
        # A live logger holds a tracking client and cannot be pickled; a saved model needs neither.
        state = {k: v for k, v in self.__dict__.items() if k not in self._not_pickled}
        for live in ("logger", "callbacks"):
            if live in state:
                state[live] = None
        return state


def _floats(X) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32))
