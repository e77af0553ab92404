"""The common corpus table: its columns, vocabularies and errors."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from crossemo.errors import UserError


class Emotion(StrEnum):
    """Canonical emotion vocabulary shared by every loader."""

    ANGER = "anger"
    BOREDOM = "boredom"
    CALM = "calm"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPINESS = "happiness"
    NEUTRAL = "neutral"
    SADNESS = "sadness"
    SURPRISE = "surprise"
    # Corpus-specific categories (IEMOCAP, FAU-AIBO) that the valence map may still use.
    EXCITEMENT = "excitement"
    FRUSTRATION = "frustration"
    OTHER = "other"
    UNDECIDED = "undecided"
    EMPHATIC = "emphatic"
    POSITIVE = "positive"
    REST = "rest"
    NEGATIVE = "negative"
    IDLE = "idle"


#: Common spellings of the canonical emotions in other corpora's manifests (lower case). A corpus'
#: own words go under params.yaml's corpora.<name>.emotions.
EMOTION_SPELLINGS = {
    **{word: Emotion.ANGER for word in ("angry", "ang", "anger", "mad", "annoyed")},
    **{word: Emotion.BOREDOM for word in ("bored", "boring", "bor")},
    **{word: Emotion.CALM for word in ("calmness", "relaxed")},
    **{word: Emotion.DISGUST for word in ("disgusted", "dis", "disgust")},
    **{word: Emotion.FEAR for word in ("fearful", "afraid", "scared", "fea", "anxiety", "anxious")},
    **{word: Emotion.HAPPINESS for word in ("happy", "joy", "joyful", "hap", "glad")},
    **{word: Emotion.NEUTRAL for word in ("neu", "neutrality")},
    **{word: Emotion.SADNESS for word in ("sad", "sorrow", "unhappy")},
    **{word: Emotion.SURPRISE for word in ("surprised", "sur", "pleasant_surprise", "ps")},
}


class Valence(StrEnum):
    NEGATIVE = "negative"
    POSITIVE = "positive"
    EXCLUDED = "excluded"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


#: Columns every corpus table has, in this order; loaders may add grouping columns after them.
COLUMNS = (
    "corpus",
    "language",
    "speaker",
    "gender",
    "utterance_id",
    "path",
    "emotion",
    "valence",
)


class CorpusError(UserError, ValueError):
    """A corpus could not be read: says which corpus, which file, and what was expected."""

    def __init__(self, corpus: str, where: Path | str, problem: str, expected: str):
        self.corpus, self.where, self.problem, self.expected = corpus, str(where), problem, expected
        super().__init__(f"[{corpus}] {where}: {problem}. Expected {expected}.")
