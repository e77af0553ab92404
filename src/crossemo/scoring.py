"""Scoring many audio files offline (`crossemo predict`): every input gets a row, a bad file its reason.

A folder of recordings usually holds a broken file or two; they must not cost the others their
answers. Features are extracted as in the pipeline (worker processes, the per-file cache), then the
model scores the good rows in one call.
"""

from __future__ import annotations

import glob
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .errors import ConfigError, UserError
from .features import FeatureSettings, extract, feature_names

#: What a folder is searched for (soundfile reads these).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
ANSWER_COLUMNS = ["file", "valence", "p_negative", "p_positive", "model_version", "error"]
MAX_SECONDS = 60.0  # as the served model: a longer file is a recording to split, not an utterance


class NoInput(UserError, ValueError):
    """An input that names nothing: a missing file, an empty folder, a pattern matching nothing."""


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for audio files; glob patterns expanded (for
    shells that pass them on unexpanded). Order is kept, duplicates dropped."""
    found: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            what = f"folder {given} holds no audio file ({', '.join(AUDIO_SUFFIXES)})"
        elif path.exists() or path.is_symlink():
            matches, what = [path], ""
        elif glob.has_magic(given):
            matches = sorted(Path(p) for p in glob.glob(given, recursive=True) if Path(p).is_file())
            what = f"pattern {given!r} matches no file"
        else:
            matches, what = [], f"{given}: no such file or folder"
        if not matches:
            raise NoInput(f"{what}; give audio files, folders or glob patterns")
        found += matches
    return list(dict.fromkeys(found))


def score_files(model, files: list[Path], features: FeatureSettings, progress: bool = True) -> pd.DataFrame:
    """One row per file, in order: the model's answer, or empty answer fields and the reason.

    `model` is a loaded crossemo pyfunc model; it is given the good files' features, extracted with the
    model's own settings (`features`: its feature set included)."""
    features = replace(features, max_duration=MAX_SECONDS)
    values, bad = extract(files, features, progress="" if progress else None)
    good = [i for i in range(len(files)) if i not in bad]
    scored = pd.DataFrame(columns=ANSWER_COLUMNS[1:5], index=good)
    if good:
        columns = feature_names(features.feature_set)
        scored = model.predict(pd.DataFrame(values[good].astype("float64"), columns=columns)).set_index(pd.Index(good))
    answer = scored.reindex(range(len(files)))  # bad files: empty answer fields
    answer.insert(0, "file", [str(f) for f in files])
    answer["error"] = [bad.get(i) for i in range(len(files))]
    return answer[ANSWER_COLUMNS]


def output_format(path: str | Path) -> str:
    """'csv' or 'json', from the file's extension."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("csv", "json"):
        raise ConfigError(f"--output {path}: give a .csv or .json file")
    return suffix


def write_answer(answer: pd.DataFrame, path: str | Path) -> None:
    """CSV, or JSON as a list of records (null where a field is empty)."""
    if output_format(path) == "json":
        Path(path).write_text(answer.to_json(orient="records", indent=1))
    else:
        answer.to_csv(path, index=False)


def as_text(answer: pd.DataFrame) -> str:
    """The rows as an aligned table, probabilities to three places, empty fields blank."""
    shown = answer.copy()
    for column in ("p_negative", "p_positive"):
        shown[column] = [f"{v:.3f}" if pd.notna(v) else "" for v in answer[column]]
    return shown.fillna("").to_string(index=False)


def summary_line(answer: pd.DataFrame) -> str:
    failed = int(answer["error"].notna().sum())
    return f"{len(answer) - failed} of {len(answer)} files scored; {failed} failed"
