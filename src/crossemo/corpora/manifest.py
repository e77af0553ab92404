"""Any other corpus, described by a CSV manifest with columns path, emotion, speaker, language.

Optional columns: gender, utterance_id. Paths are relative to the manifest's folder. Emotions
must be canonical names (see `crossemo.corpora.Emotion`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .schema import CorpusError, Emotion, Gender

REQUIRED = ("path", "emotion", "speaker", "language")


def manifest_file(root: Path) -> Path:
    """The manifest itself, given either the CSV file or a folder holding `manifest.csv`."""
    root = Path(root)
    path = root / "manifest.csv" if root.is_dir() else root
    if not path.is_file():
        raise CorpusError("manifest", path, "manifest not found", "a CSV file, or a folder holding manifest.csv")
    return path


def scan(root: Path) -> list[dict]:
    path = manifest_file(root)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise CorpusError("manifest", path, f"missing columns {missing}", f"a header with {', '.join(REQUIRED)}")
    known = {e.value for e in Emotion}
    rows = []
    for line, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        emotion = row["emotion"].strip().lower()
        if emotion not in known:
            raise CorpusError(
                "manifest",
                f"{path}:{line}",
                f"unknown emotion {row['emotion']!r}",
                f"one of {', '.join(sorted(known))}",
            )
        if not (path.parent / row["path"]).is_file():
            raise CorpusError(
                "manifest",
                f"{path}:{line}",
                f"audio file {row['path']!r} not found",
                "paths relative to the manifest's folder",
            )
        rows.append(
            {
                "speaker": row["speaker"],
                "gender": row.get("gender") or Gender.UNKNOWN,
                "utterance_id": row.get("utterance_id") or Path(row["path"]).stem,
                "path": row["path"],
                "emotion": emotion,
                "language": row["language"],
            }
        )
    return rows
