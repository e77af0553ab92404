"""Any other corpus, described by a CSV manifest with columns path, emotion, speaker, language.

Optional columns: gender, utterance_id. Paths are relative to the manifest's folder. Emotions are
canonical names (see `crossemo.data.corpora.Emotion`) or common spellings of them (`happy`, `angry`, `joy`:
`EMOTION_SPELLINGS`); `emotions` (params.yaml's corpora.<name>.emotions) maps any other word.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.data.corpora.schema import EMOTION_SPELLINGS, CorpusError, Emotion, Gender

REQUIRED = ("path", "emotion", "speaker", "language")


def manifest_file(root: Path) -> Path:
    """The manifest itself, given either the CSV file or a folder holding `manifest.csv`."""
    root = Path(root)
    path = root / "manifest.csv" if root.is_dir() else root
    if not path.is_file():
        raise CorpusError("manifest", path, "manifest not found", "a CSV file, or a folder holding manifest.csv")
    return path


def emotion_words(emotions: dict | None) -> dict[str, str]:
    """Every word a manifest may use -> its canonical emotion: the canonical names, the common
    spellings, then the corpus' own mapping (which wins)."""
    known = {e.value for e in Emotion}
    own = {str(k).strip().lower(): str(v).strip().lower() for k, v in (emotions or {}).items()}
    wrong = {k: v for k, v in own.items() if v not in known}
    if wrong:
        word, target = next(iter(wrong.items()))
        raise CorpusError(
            "manifest", "params.yaml", f"corpora.<name>.emotions maps {word!r} to {target!r}", f"one of {sorted(known)}"
        )
    return {**{e: e for e in known}, **{k: str(v) for k, v in EMOTION_SPELLINGS.items()}, **own}


def scan(root: Path, emotions: dict | None = None) -> list[dict]:
    path = manifest_file(root)
    words = emotion_words(emotions)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise CorpusError("manifest", path, f"missing columns {missing}", f"a header with {', '.join(REQUIRED)}")
    known = {e.value for e in Emotion}
    rows = []
    for line, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        emotion = words.get(row["emotion"].strip().lower())
        if emotion is None:
            raise CorpusError(
                "manifest",
                f"{path}:{line}",
                f"unknown emotion {row['emotion']!r}",
                f"one of {', '.join(sorted(known))}, a common spelling of one (happy, angry, sad, ...), "
                "or a word mapped under params.yaml's corpora.<name>.emotions",
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
