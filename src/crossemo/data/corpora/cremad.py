"""CREMA-D: `AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`, genders from VideoDemographics.csv."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import Gender

NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX|X)")
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}


def scan(root: Path) -> list[dict]:
    root = require_dir("cremad", root, "CREMA-D with AudioWAV/ (or the flat Kaggle folder)")
    genders = _genders(root)
    audio_dir = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    rows = []
    for path in audio_files(audio_dir, "*.wav"):
        m = match("cremad", NAME, path, path.stem, "<actor>_<sentence>_<emotion>_<level>, e.g. 1001_DFA_ANG_XX")
        rows.append(
            {
                "speaker": m["actor"],
                "gender": genders.get(m["actor"], Gender.UNKNOWN),
                "utterance_id": path.stem,
                "path": rel(path, root),
                "emotion": lookup("cremad", EMOTIONS, m["emotion"], path, "emotion code"),
                "sentence": m["sentence"],
            }
        )
    return rows


def _genders(root: Path) -> dict[str, str]:
    demographics = root / "VideoDemographics.csv"
    if not demographics.is_file():
        return {}
    table = pd.read_csv(demographics, dtype={"ActorID": str})
    sexes = {"male": Gender.MALE, "female": Gender.FEMALE}
    return {actor: sexes.get(str(sex).lower(), Gender.UNKNOWN) for actor, sex in zip(table["ActorID"], table["Sex"])}
