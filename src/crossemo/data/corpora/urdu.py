"""URDU: `{Angry,Happy,Neutral,Sad}/S<G><id>_F<nn>_<E><nn>.wav`."""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import CorpusError, Gender

NAME = re.compile(r"(?P<speaker>S(?P<gender>[MF])\d+)_F(?P<file>\d+)_(?P<emotion>[AHNS])(?P<number>\d+)")
EMOTIONS = {"A": "anger", "H": "happiness", "N": "neutral", "S": "sadness"}
FOLDERS = {"Angry": "anger", "Happy": "happiness", "Neutral": "neutral", "Sad": "sadness"}


def scan(root: Path) -> list[dict]:
    root = require_dir("urdu", root, "URDU's emotion folders Angry, Happy, Neutral, Sad")
    rows = []
    for path in audio_files(root):
        m = match("urdu", NAME, path, path.stem, "S<G><id>_F<nn>_<E><nn>, e.g. SM1_F10_A010")
        emotion = lookup("urdu", EMOTIONS, m["emotion"], path, "emotion letter")
        folder = FOLDERS.get(path.parent.name)
        if folder is not None and folder != emotion:
            raise CorpusError(
                "urdu",
                path,
                f"file name says {emotion} but the folder says {folder}",
                "the emotion letter to agree with the folder",
            )
        rows.append(
            {
                "speaker": m["speaker"],
                "gender": Gender.MALE if m["gender"] == "M" else Gender.FEMALE,
                "utterance_id": path.stem,
                "path": rel(path, root),
                "emotion": emotion,
            }
        )
    return rows
