"""Normalisation: one standardiser, fitted on the training rows (`train`) or on each corpus' or
speaker's own label-free statistics (`corpus`, `speaker`); the served pipeline uses the same one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from crossemo.data.speakers import speaker_keys
from crossemo.experiments.protocols import Split


class Normalization(StrEnum):
    TRAIN = "train"  # standardise every row with the training rows' mean and deviation
    CORPUS = "corpus"  # each corpus on its own statistics (the target's too, without labels)
    SPEAKER = "speaker"  # each speaker on their own statistics (speakers with few utterances: their corpus')


class LoneRows(StrEnum):
    """How a served row is scored when its speaker is not given, or has fewer than
    MIN_SPEAKER_ROWS rows in the request (no statistics of its own to standardise on)."""

    POOLED = "pooled"  # the training rows' pooled statistics, then the model trained per speaker
    OWN_MODEL = "own_model"  # the pooled statistics, then a second model trained on rows standardised so


def normalize(features: np.ndarray, table: pd.DataFrame, split: Split, method: Normalization | str) -> np.ndarray:
    """Standardised copy of `features` for this split. Only `train` looks at which rows train."""
    method = Normalization(method)
    if method is Normalization.TRAIN:
        return Standardiser.fit(features[split.train]).transform(features)
    return standardise_groups(features, normalization_groups(table, method))


#: A speaker's own statistics need this many utterances. With fewer they are noisy, and they reflect
#: the few emotions the speaker happens to express: per-speaker centring would then remove valence
#: itself. A corpus whose median speaker has fewer (URDU's talk-show speakers: median 4 utterances,
#: nearly every speaker one class, the largest 80) is standardised on its corpus' statistics as a
#: whole; elsewhere a speaker below it takes their corpus'. Label-free: it counts utterances only.
MIN_SPEAKER_ROWS = 30


def normalization_groups(table: pd.DataFrame, method: Normalization | str) -> np.ndarray | None:
    """Label-free groups standardised together: each corpus, or (speaker) each speaker with at least
    MIN_SPEAKER_ROWS utterances in a corpus whose median speaker has that many, else the corpus.
    None for `train`: no group of its own, the training rows' statistics."""
    method = Normalization(method)
    if method is Normalization.TRAIN:
        return None
    corpus = table["corpus"].astype(str)
    if method is Normalization.CORPUS:
        return corpus.to_numpy()
    speaker = speaker_keys(table)
    counts = speaker.value_counts()  # utterances per speaker
    corpus_of = corpus.groupby(speaker).first()
    median_speaker = corpus.map(counts.groupby(corpus_of[counts.index].to_numpy()).median())
    on_own = (speaker.map(counts) >= MIN_SPEAKER_ROWS) & (median_speaker >= MIN_SPEAKER_ROWS)
    return speaker.where(on_own, corpus).to_numpy()


def standardise_groups(features: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group of rows (a corpus, a speaker) standardised on its own statistics."""
    out = np.empty_like(features, dtype=np.float32)
    for _, index in pd.Series(np.arange(len(features))).groupby(np.asarray(groups)):
        block = features[index.to_numpy()]
        out[index.to_numpy()] = Standardiser.fit(block).transform(block)
    return out


def normalize_unseen(
    features: np.ndarray, table: pd.DataFrame, split: Split, method: Normalization | str
) -> np.ndarray:
    """As `normalize`, except that the test rows are standardised with the training rows' pooled
    statistics: a model that may not study the test corpus' audio meets its utterances one by one."""
    out = normalize(features, table, split, method)
    out[split.test] = Standardiser.fit(features[split.train]).transform(features[split.test])
    return out


@dataclass(frozen=True)
class Standardiser:
    """Column means and scales fitted on some rows, applied to any rows: the one standardisation of
    the experiments (training rows, a corpus, a speaker) and of the served pipeline (pooled rows)."""

    mean_: np.ndarray
    scale_: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        """A constant column keeps scale 1 (left as it is, not divided by 0)."""
        std = x.std(0)
        return cls(x.mean(0), np.where(std > 0, std, 1).astype(x.dtype))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) / self.scale_).astype(np.float32)
