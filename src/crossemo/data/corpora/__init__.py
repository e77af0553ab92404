"""Corpus loaders: each turns a corpus' native layout into the common table.

>>> from crossemo.data.corpora import load_corpus
>>> table = load_corpus("emodb", "../shared/corpora/emodb")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crossemo.data.corpora import aibo, cremad, emodb, emovo, iemocap, manifest, ravdess, savee, tess, urdu
from crossemo.data.corpora.schema import COLUMNS, CorpusError, Emotion, Gender, Valence

__all__ = [
    "LOADERS",
    "COLUMNS",
    "CorpusError",
    "Emotion",
    "Gender",
    "Valence",
    "ValenceMap",
    "PAPER_VALENCE",
    "load_corpus",
    "audio_folder",
]


@dataclass(frozen=True)
class ValenceMap:
    """Which emotions count as negative and which as positive; every other emotion is excluded."""

    negative: frozenset[str]
    positive: frozenset[str]

    def __post_init__(self):
        unknown = (self.negative | self.positive) - {e.value for e in Emotion}
        if unknown:
            raise ValueError(f"valence map names unknown emotions {sorted(unknown)}; use {[e.value for e in Emotion]}")
        both = self.negative & self.positive
        if both:
            raise ValueError(f"emotions {sorted(both)} are mapped to both negative and positive")

    @classmethod
    def from_dict(cls, spec: Mapping[str, list[str]]) -> ValenceMap:
        return cls(frozenset(spec.get("negative", ())), frozenset(spec.get("positive", ())))

    def __call__(self, emotion: str) -> str:
        if emotion in self.negative:
            return Valence.NEGATIVE
        if emotion in self.positive:
            return Valence.POSITIVE
        return Valence.EXCLUDED


#: Table 1 of Latif et al. (2018), as held in params.yaml.
PAPER_VALENCE = ValenceMap.from_dict(
    {
        "negative": ["anger", "sadness", "fear", "disgust", "boredom"],
        "positive": ["neutral", "happiness", "surprise", "calm"],
    }
)


@dataclass(frozen=True)
class Loader:
    scan: Callable[..., list[dict]]
    language: str | None  # None: the table itself says (CSV manifests)
    valence: ValenceMap | None = None  # a corpus' own mapping where the paper gives one
    description: str = field(default="")


LOADERS: dict[str, Loader] = {
    "emodb": Loader(emodb.scan, "german", description="EMO-DB, Berlin acted speech"),
    "savee": Loader(savee.scan, "english", description="SAVEE, British English acted speech"),
    "emovo": Loader(emovo.scan, "italian", description="EMOVO, Italian acted speech"),
    "urdu": Loader(urdu.scan, "urdu", description="URDU, Urdu talk-show speech"),
    "iemocap": Loader(
        iemocap.scan,
        "english",
        ValenceMap.from_dict(
            {
                # The paper's IEMOCAP row: everything else is excluded.
                "negative": ["anger", "sadness"],
                "positive": ["neutral", "happiness", "excitement"],
            }
        ),
        description="IEMOCAP, English dyadic sessions",
    ),
    "aibo": Loader(
        aibo.scan,
        "german",
        ValenceMap.from_dict(
            {
                "negative": ["negative", "anger", "emphatic"],
                "positive": ["idle", "neutral", "positive", "rest"],
            }
        ),
        description="FAU-AIBO, German children (IS2009 challenge)",
    ),
    "ravdess": Loader(ravdess.scan, "english", description="RAVDESS speech, North American acted"),
    "tess": Loader(tess.scan, "english", description="TESS, Toronto older/younger actress"),
    "cremad": Loader(cremad.scan, "english", description="CREMA-D, crowd-rated acted speech"),
    "manifest": Loader(manifest.scan, None, description="any corpus from a CSV manifest"),
}


def audio_folder(name: str, root: str | Path) -> Path:
    """The folder a corpus table's `path` column is relative to: the root, or for a CSV manifest
    given as the file itself, the manifest's folder."""
    return manifest.manifest_file(root).parent if name == "manifest" else Path(root)


def load_corpus(
    name: str, root: str | Path, valence: ValenceMap | Mapping | None = None, corpus: str | None = None, **options
) -> pd.DataFrame:
    """Read corpus `name` (a key of LOADERS) at `root` into the common table.

    `valence` overrides the corpus' mapping (default: its own, else the paper's Table 1);
    `corpus` names the table's rows (default: `name`); `options` go to the loader (AIBO: labels).
    """
    if name not in LOADERS:
        raise CorpusError(name, root, f"unknown corpus {name!r}", f"one of {', '.join(LOADERS)}")
    loader = LOADERS[name]
    rows = loader.scan(Path(root), **options)
    if not rows:
        raise CorpusError(name, root, "no utterances found", "audio files in the corpus' native layout")
    if isinstance(valence, Mapping):
        valence = ValenceMap.from_dict(valence)
    mapping = valence or loader.valence or PAPER_VALENCE
    table = pd.DataFrame(rows)
    table.insert(0, "corpus", corpus or name)
    if loader.language is not None:
        table.insert(1, "language", loader.language)
    table["gender"] = table["gender"].astype(str)
    table["emotion"] = table["emotion"].astype(str)
    table["valence"] = table["emotion"].map(mapping).astype(str)
    extra = [c for c in table.columns if c not in COLUMNS]
    return table[list(COLUMNS) + extra]
