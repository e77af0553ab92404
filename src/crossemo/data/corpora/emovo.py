"""EMOVO: `{f1..m3}/EMO-SPK-SENT.wav`, e.g. `f1/dis-f1-b1.wav`."""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import Gender

NAME = re.compile(r"(?P<emotion>[a-z]{3})-(?P<speaker>[fm][1-3])-(?P<sentence>\w+)")
EMOTIONS = {
    "dis": "disgust",
    "gio": "happiness",
    "neu": "neutral",
    "pau": "fear",
    "rab": "anger",
    "sor": "surprise",
    "tri": "sadness",
}


def scan(root: Path) -> list[dict]:
    root = require_dir("emovo", root, "EMOVO's speaker folders f1..m3 holding EMO-SPK-SENT.wav")
    rows = []
    for path in audio_files(root):
        m = match("emovo", NAME, path, path.stem, "EMO-SPK-SENT, e.g. dis-f1-b1")
        rows.append(
            {
                "speaker": m["speaker"],
                "gender": Gender.FEMALE if m["speaker"].startswith("f") else Gender.MALE,
                "utterance_id": path.stem,
                "path": rel(path, root),
                "emotion": lookup("emovo", EMOTIONS, m["emotion"], path, "emotion code"),
                "sentence": m["sentence"],
            }
        )
    return rows
