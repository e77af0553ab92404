"""TESS: `<OAF|YAF>_<word>_<emotion>.wav`, in per-speaker emotion folders or flat."""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir, unique_by_name
from crossemo.data.corpora.schema import Gender

NAME = re.compile(r"(?P<speaker>OAF|YAF|OA)_(?P<word>[A-Za-z]+)_(?P<emotion>[A-Za-z]+)")
EMOTIONS = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "neutral": "neutral",
    "ps": "surprise",
    "sad": "sadness",
}


def scan(root: Path) -> list[dict]:
    root = require_dir("tess", root, "TESS folders such as OAF_angry/ holding OAF_back_angry.wav")
    rows = []
    # Kaggle downloads may hold the corpus twice, nested: keep one file per name.
    for path in unique_by_name(audio_files(root)):
        m = match("tess", NAME, path, path.stem, "<OAF|YAF>_<word>_<emotion>, e.g. OAF_back_angry")
        speaker = "OAF" if m["speaker"] == "OA" else m["speaker"]  # OA_bite_neutral.wav is OAF's
        rows.append(
            {
                "speaker": speaker,
                "gender": Gender.FEMALE,
                "utterance_id": f"{speaker}_{m['word']}_{m['emotion']}",
                "path": rel(path, root),
                "emotion": lookup("tess", EMOTIONS, m["emotion"].lower(), path, "emotion word"),
            }
        )
    return rows
