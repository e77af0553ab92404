"""SAVEE: flat `DC_sa01.wav` or the original `AudioData/DC/sa01.wav`."""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import Gender

SPEAKERS = "DC|JE|JK|KL"
# `sa`/`su` come before `a` so that sadness and surprise are not read as anger.
EMOTION_CODES = "sa|su|a|d|f|h|n"
FLAT = re.compile(rf"(?P<speaker>{SPEAKERS})_(?P<emotion>{EMOTION_CODES})(?P<number>\d\d)")
NESTED = re.compile(rf"(?P<emotion>{EMOTION_CODES})(?P<number>\d\d)")
EMOTIONS = {
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
    "sa": "sadness",
    "su": "surprise",
}


def scan(root: Path) -> list[dict]:
    root = require_dir("savee", root, "SAVEE as flat DC_a01.wav files or AudioData/DC/a01.wav")
    rows = []
    for path in audio_files(root):
        speaker_dir = path.parent.name
        if re.fullmatch(SPEAKERS, speaker_dir):
            m = match("savee", NESTED, path, path.stem, "AudioData/<speaker>/<emotion><nn>.wav, e.g. sa01")
            speaker = speaker_dir
        else:
            m = match("savee", FLAT, path, path.stem, "<speaker>_<emotion><nn>.wav, e.g. DC_sa01")
            speaker = m["speaker"]
        rows.append(
            {
                "speaker": speaker,
                "gender": Gender.MALE,
                "utterance_id": f"{speaker}_{m['emotion']}{m['number']}",
                "path": rel(path, root),
                "emotion": lookup("savee", EMOTIONS, m["emotion"], path, "emotion code"),
            }
        )
    return rows
