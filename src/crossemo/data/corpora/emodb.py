"""EMO-DB (Berlin Database of Emotional Speech): `wav/03a01Fa.wav`."""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import Emotion, Gender

NAME = re.compile(r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])")
EMOTIONS = {
    "W": Emotion.ANGER,
    "L": Emotion.BOREDOM,
    "E": Emotion.DISGUST,
    "A": Emotion.FEAR,
    "F": Emotion.HAPPINESS,
    "T": Emotion.SADNESS,
    "N": Emotion.NEUTRAL,
}
MALE_SPEAKERS = {"03", "10", "11", "12", "15"}


def scan(root: Path) -> list[dict]:
    root = require_dir("emodb", root, "EMO-DB's download layout with a wav/ folder")
    rows = []
    for path in audio_files(root, "wav/*.wav"):
        m = match("emodb", NAME, path, path.stem, "SSTTTEV, e.g. 03a01Fa (speaker, text, emotion letter, version)")
        rows.append(
            {
                "speaker": m["speaker"],
                "gender": Gender.MALE if m["speaker"] in MALE_SPEAKERS else Gender.FEMALE,
                "utterance_id": path.stem,
                "path": rel(path, root),
                "emotion": lookup("emodb", EMOTIONS, m["emotion"], path, "emotion letter"),
                "text": m["text"],
            }
        )
    return rows
