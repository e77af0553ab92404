"""The served pipeline: raw audio (or openSMILE features) -> features -> normalisation -> network
-> valence, with everything it needs from audio to answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crossemo.data.audio import read_utterance
from crossemo.data.features import FeatureSettings, feature_names, functionals, smile
from crossemo.experiments.normalization import (
    MIN_SPEAKER_ROWS,
    LoneRows,
    Normalization,
    Standardiser,
    standardise_groups,
)
from crossemo.models.estimator import ValenceModel

MAX_AUDIO_SECONDS = 60.0  # a longer recording is a recording to split, not an utterance


@dataclass
class ValencePipeline:
    features: FeatureSettings
    pooled: Standardiser  # fitted on the training rows together: what standardises a lone utterance
    model: ValenceModel
    #: how the training rows were standardised. corpus / speaker: the rows of one speaker in a request
    #: (the `speaker` column) are standardised on their own label-free statistics, as in training;
    #: train: every row on the pooled statistics.
    normalization: Normalization = Normalization.TRAIN
    #: the model for lone rows (LoneRows.OWN_MODEL), trained on rows standardised with the pooled statistics;
    #: None: lone rows go to `model`.
    lone_model: ValenceModel | None = None

    def __post_init__(self):
        self._smile = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_smile"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._smile = None

    @property
    def lone_rows(self) -> LoneRows:
        return LoneRows.POOLED if self.lone_model is None else LoneRows.OWN_MODEL

    def standardise(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Each group on its own statistics (`crossemo.experiments.normalization.normalization_groups`); no groups (a
        lone utterance, or a pipeline trained on the training rows' statistics): the pooled ones."""
        if groups is None:
            return self.pooled.transform(x)
        return standardise_groups(x, groups)

    def speaker_groups(self, speakers, n: int) -> np.ndarray:
        """Per row of `n`, the speaker whose own statistics standardise it, or None for a lone row: no
        speaker given, or fewer than MIN_SPEAKER_ROWS of theirs (training's rule), or a pipeline
        trained on pooled statistics. Depends only on the rows of each speaker, not on their order."""
        if speakers is None or self.normalization is Normalization.TRAIN:
            return np.full(n, None, dtype=object)
        keys = pd.Series([s if isinstance(s, str) and s else None for s in speakers], dtype=object)
        counts = keys.map(keys.value_counts())
        return keys.where(counts >= MIN_SPEAKER_ROWS, None).to_numpy(dtype=object)

    def score(self, x: np.ndarray, speakers=None) -> pd.DataFrame:
        """valence, p_negative, p_positive and how each row was standardised ('speaker' or 'lone')."""
        groups = self.speaker_groups(speakers, len(x))
        own = np.array([g is not None for g in groups], dtype=bool)
        labels = np.empty(len(x), dtype=object)
        proba = np.empty((len(x), 2))
        if own.any():
            normalized = standardise_groups(x[own], groups[own].astype(str))
            labels[own], proba[own] = self.model.predict(normalized), self.model.predict_proba(normalized)
        if (~own).any():
            model = self.lone_model or self.model
            normalized = self.standardise(x[~own])
            labels[~own], proba[~own] = model.predict(normalized), model.predict_proba(normalized)
        return pd.DataFrame(
            {
                "valence": labels.astype(str),
                "p_negative": proba[:, 0],
                "p_positive": proba[:, 1],
                "standardised_on": np.where(own, "speaker", "lone"),
            }
        )

    @property
    def feature_names(self) -> list[str]:
        """The columns the model was trained on: its feature set's, in openSMILE's order."""
        return feature_names(self.features.feature_set)

    def audio_features(self, source, name: str) -> np.ndarray:
        utterance = read_utterance(source, self.features.channel, self.features.min_duration, MAX_AUDIO_SECONDS, name)
        if self._smile is None:
            self._smile = smile(self.features.sampling_rate, self.features.feature_set)
        return functionals(self._smile, utterance, name)
