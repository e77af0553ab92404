"""The held-out rows a fit stops on: speaker-disjoint, or one whole training corpus in turn."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

log = logging.getLogger(__name__)


def corpus_validation_split(groups, member: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(train, validation) indices that hold out one whole training corpus, the `member`-th of the
    sorted corpora in turn; groups are 'corpus/speaker' keys (`speaker_keys`). None when the rows
    come from fewer than two corpora (a key without '/' counts as no corpus named)."""
    keys = np.asarray(groups).astype(str)
    corpora = np.array([key.split("/", 1)[0] if "/" in key else "" for key in keys])
    names = np.unique(corpora)
    if len(names) < 2:
        return None
    held_out = corpora == names[member % len(names)]
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def validation_split(y: np.ndarray, groups, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices; speaker-disjoint whenever there are at least two speakers."""
    index = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 2:
        split = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(split.split(index, y, groups))
    log.warning("no speaker groups: the validation split is random, not speaker-disjoint")
    return next(StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(index, y))
