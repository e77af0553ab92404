"""Evaluation protocols: which rows train and which test, over one table of all corpora.

Every split is a `Split` of row positions into the concatenated feature table. Labels of test rows
never reach training: protocols only choose rows (normalisation is `crossemo.experiments.normalization`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedShuffleSplit

from crossemo.data.speakers import speaker_keys
from crossemo.errors import ConfigError, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    source: str  # corpora trained on, joined by '+'
    target: str  # the corpus tested on
    fold: int = 0
    fraction: float = 0.0  # share of the target added to training (target-fraction scenario)
    speaker_disjoint: bool = True  # whether no test speaker appears in training
    notes: str = ""

    def __post_init__(self):
        if np.intersect1d(self.train, self.test).size:
            raise ValueError(f"split {self.source} -> {self.target}: rows are both in training and test")


def _rows(table: pd.DataFrame, corpus: str | list[str]) -> np.ndarray:
    corpora = [corpus] if isinstance(corpus, str) else corpus
    missing = set(corpora) - set(table["corpus"])
    if missing:
        raise ConfigError(f"corpora {sorted(missing)} not in the feature table ({sorted(set(table['corpus']))})")
    return np.flatnonzero(table["corpus"].isin(corpora).to_numpy())


def _speaker_disjoint(table: pd.DataFrame, split_train: np.ndarray, split_test: np.ndarray) -> bool:
    key = speaker_keys(table)
    return set(key.iloc[split_train]).isdisjoint(key.iloc[split_test])


def within_random(table: pd.DataFrame, corpus: str, seed: int, test_size: float = 0.25) -> list[Split]:
    """The paper's protocol: a random stratified 75/25 split of one corpus (speakers shared)."""
    rows = _rows(table, corpus)
    y = table["valence"].to_numpy()[rows]
    train, test = next(StratifiedShuffleSplit(1, test_size=test_size, random_state=seed).split(rows, y))
    return [
        Split(
            rows[train], rows[test], corpus, corpus, speaker_disjoint=_speaker_disjoint(table, rows[train], rows[test])
        )
    ]


def within_speaker_folds(table: pd.DataFrame, corpus: str, seed: int, folds: int = 5) -> list[Split]:
    """The field's stricter protocol: speaker-grouped folds (leave-one-speaker-out when folds >= speakers)."""
    rows = _rows(table, corpus)
    speakers = table["speaker"].astype(str).to_numpy()[rows]
    k = min(folds, len(set(speakers)))
    if k < 2:
        raise UserError(f"{corpus} has one speaker: speaker-independent folds are impossible")
    # Unshuffled, GroupKFold deals speakers out by size, so a seed would only break ties: every seed
    # would get the same folds and the intervals over seeds would leave out the folds' variance.
    folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(rows, groups=speakers)
    return [Split(rows[tr], rows[te], corpus, corpus, fold=i) for i, (tr, te) in enumerate(folds)]


def within_sessions(table: pd.DataFrame, corpus: str, sessions: tuple[int, int] = (1, 2)) -> list[Split]:
    """IEMOCAP's protocol in the paper: two sessions, two-fold (train on one, test on the other).
    Empty for corpora without a session column."""
    rows = _rows(table, corpus)
    if "session" not in table.columns or table["session"].iloc[rows].isna().all():
        return []
    session = table["session"].to_numpy()[rows]
    a, b = (rows[session == s] for s in sessions)
    if not len(a) or not len(b):
        raise UserError(
            f"{corpus} lacks session {sessions[0] if not len(a) else sessions[1]} for the two-session protocol"
        )
    return [
        Split(a, b, corpus, corpus, fold=0, notes=f"session {sessions[0]} -> {sessions[1]}"),
        Split(b, a, corpus, corpus, fold=1, notes=f"session {sessions[1]} -> {sessions[0]}"),
    ]


def cross_corpus(table: pd.DataFrame, sources: list[str], target: str) -> Split:
    """Train on all of `sources`, test on all of `target` (single-, multi-source, leave one corpus out)."""
    if target in sources:
        raise ValueError(f"target {target} is also a source")
    return Split(_rows(table, sources), _rows(table, target), "+".join(sources), target)


def target_fraction(
    table: pd.DataFrame, sources: list[str], target: str, fraction: float, seed: int, min_test_speakers: int = 2
) -> Split:
    """Sources plus `fraction` of the target in training; the rest of the target tests.

    The target slice is made of whole speakers whenever the target has enough of them (keeping at
    least `min_test_speakers` for the test); otherwise utterances are drawn at random and the split
    says so (speaker_disjoint=False, with a note).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must lie in (0, 1), not {fraction}")
    rows = _rows(table, target)
    rng = np.random.default_rng(seed)
    speakers = table["speaker"].astype(str).to_numpy()[rows]
    unique = rng.permutation(sorted(set(speakers)))
    counts = pd.Series(speakers).value_counts()
    taken, total = [], 0
    for s in unique[:-min_test_speakers] if len(unique) > min_test_speakers else []:
        if total >= fraction * len(rows):
            break
        taken.append(s)
        total += counts[s]
    achieved = total / len(rows)
    if taken and abs(achieved - fraction) <= max(0.5 * fraction, 0.05):
        in_train = np.isin(speakers, taken)
        return Split(
            np.concatenate([_rows(table, sources), rows[in_train]]),
            rows[~in_train],
            "+".join(sources),
            target,
            fraction=fraction,
            notes=f"{len(taken)} target speakers, {achieved:.0%} of the target",
        )
    y = table["valence"].to_numpy()[rows]
    train, test = next(StratifiedShuffleSplit(1, train_size=fraction, random_state=seed).split(rows, y))
    return Split(
        np.concatenate([_rows(table, sources), rows[train]]),
        rows[test],
        "+".join(sources),
        target,
        fraction=fraction,
        speaker_disjoint=False,
        notes=f"{target} has too few speakers for a {fraction:.0%} speaker slice: random utterances",
    )
