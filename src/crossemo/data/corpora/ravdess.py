"""RAVDESS speech: `Actor_NN/MM-VV-EE-II-SS-RR-AA.wav` (audio-only speech files only)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir, unique_by_name
from crossemo.data.corpora.schema import Gender

log = logging.getLogger(__name__)

NAME = re.compile(
    r"(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<emotion>0[1-8])-(?P<intensity>0[12])"
    r"-(?P<statement>0[12])-(?P<repetition>0[12])-(?P<actor>\d\d)"
)
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happiness",
    "04": "sadness",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}


def scan(root: Path) -> list[dict]:
    root = require_dir("ravdess", root, "Audio_Speech_Actors_01-24 with Actor_NN folders")
    rows, not_speech = [], 0
    for path in unique_by_name(audio_files(root)):
        m = match("ravdess", NAME, path, path.stem, "seven two-digit fields, e.g. 03-01-06-01-02-01-12")
        if m["modality"] != "03" or m["channel"] != "01":
            not_speech += 1  # song or video files: not part of the speech corpus
            continue
        actor = int(m["actor"])
        rows.append(
            {
                "speaker": f"Actor_{m['actor']}",
                "gender": Gender.MALE if actor % 2 else Gender.FEMALE,
                "utterance_id": path.stem,
                "path": rel(path, root),
                "emotion": lookup("ravdess", EMOTIONS, m["emotion"], path, "emotion code"),
                "intensity": "strong" if m["intensity"] == "02" else "normal",
            }
        )
    if not_speech:
        log.info("ravdess: skipped %d song/video files (vocal channel or modality not audio speech)", not_speech)
    return rows
