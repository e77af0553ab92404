"""Scoring many audio files offline (`crossemo predict`): every input gets a row, a bad file its reason.

A folder of recordings usually holds a broken file or two; they must not cost the others their
answers. Files go to the model in batches no larger than its row cap: features are extracted (worker
processes, the per-file cache) and scored batch by batch, and rows are written as they come, so
memory stays bounded however many files there are. With speakers (`--speaker-from`), a speaker's
files travel in one batch, and the model standardises them together, as it does in training.
"""

from __future__ import annotations

import glob
import json
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from crossemo.data.features import Extractor, FeatureSettings, feature_names
from crossemo.errors import ConfigError, UserError
from crossemo.serving.requests import MAX_ROWS, SPEAKER_COLUMN

#: What a folder is searched for (soundfile reads these).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
ANSWER_COLUMNS = ["file", "valence", "p_negative", "p_positive", "standardised_on", "model_version", "error"]
MODEL_COLUMNS = ANSWER_COLUMNS[1:6]  # what the model answers for a file it could score
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


def speaker_rule(spec: str) -> Callable[[Path], str | None]:
    """--speaker-from: `parent` (the file's folder), `regex:PATTERN` (its first group, else the whole
    match, searched in the file's path; no match: a lone file) or `manifest:CSV` (columns path and
    speaker, paths relative to the CSV's folder; a file it does not list: a lone file)."""
    kind, _, argument = spec.partition(":")
    if kind == "parent" and not argument:
        return lambda path: str(Path(path).parent)
    if kind == "regex" and argument:
        try:
            pattern = re.compile(argument)
        except re.error as error:
            raise ConfigError(f"--speaker-from {spec}: not a regular expression ({error})") from None

        def by_pattern(path: Path) -> str | None:
            found = pattern.search(Path(path).as_posix())
            return (found.group(1) if pattern.groups else found.group(0)) or None if found else None

        return by_pattern
    if kind == "manifest" and argument:
        return _manifest_speakers(Path(argument))
    raise ConfigError(f"--speaker-from {spec}: give parent, regex:PATTERN or manifest:CSV")


def _manifest_speakers(csv: Path) -> Callable[[Path], str | None]:
    if not csv.is_file():
        raise ConfigError(f"--speaker-from manifest:{csv}: no such file")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "speaker") if c not in table.columns]
    if missing:
        raise ConfigError(f"--speaker-from manifest:{csv}: missing columns {missing}; give path and speaker")
    speakers = {(csv.parent / p).resolve(): s or None for p, s in zip(table["path"], table["speaker"])}
    return lambda path: speakers.get(Path(path).resolve())


def batches(speakers: list[str | None] | None, n: int, cap: int = MAX_ROWS) -> list[np.ndarray]:
    """Positions per batch, none over `cap`. Without speakers: input order. With them: files grouped
    by speaker (first appearance), whole speakers packed together; a speaker with more files than
    `cap` is split into near-equal batches of their own; lone files last."""
    if speakers is None:
        return [np.arange(start, min(start + cap, n)) for start in range(0, n, cap)]
    keys = pd.Series(speakers, dtype=object)
    groups = [np.flatnonzero(keys.to_numpy() == key) for key in pd.unique(keys.dropna())]
    lone = np.flatnonzero(keys.isna().to_numpy())
    out, current = [], []
    for rows in groups:
        if len(rows) > cap:
            out += np.array_split(rows, -(-len(rows) // cap))
            continue
        if len(current) + len(rows) > cap:
            out.append(np.array(current, dtype=int))
            current = []
        current += list(rows)
    if current:
        out.append(np.array(current, dtype=int))
    return out + [lone[i : i + cap] for i in range(0, len(lone), cap)]


def score_files(
    model,
    files: list[Path],
    features: FeatureSettings,
    write: Callable[[pd.DataFrame], None],
    speakers: list[str | None] | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Score `files` batch by batch, handing each batch's rows to `write` as they come: the model's
    answer, or empty answer fields and the reason. Returns (rows written, files that failed).

    `model` is a loaded crossemo pyfunc model; it is given the good files' features, extracted with the
    model's own settings (`features`: its feature set included), and their speakers if known."""
    features = replace(features, max_duration=MAX_SECONDS)
    columns = feature_names(features.feature_set)
    written = failed = 0
    with Extractor(features) as extract, tqdm(total=len(files), unit="file", disable=not progress) as bar:
        for rows in batches(speakers, len(files)):
            values, bad = extract([files[i] for i in rows], progress=None)
            good = [i for i in range(len(rows)) if i not in bad]
            answer = pd.DataFrame(index=range(len(rows)), columns=MODEL_COLUMNS, dtype=object)
            if good:
                frame = pd.DataFrame(values[good].astype("float64"), columns=columns)
                if speakers is not None:
                    frame[SPEAKER_COLUMN] = [speakers[rows[i]] for i in good]
                scored = model.predict(frame)
                answer.loc[good, MODEL_COLUMNS] = scored[MODEL_COLUMNS].to_numpy()
            answer.insert(0, "file", [str(files[i]) for i in rows])
            if speakers is not None:
                answer.insert(1, SPEAKER_COLUMN, [speakers[i] for i in rows])
            answer["error"] = [bad.get(i) for i in range(len(rows))]
            write(answer)
            written, failed = written + len(rows), failed + len(bad)
            bar.update(len(rows))
    return written, failed


def output_format(path: str | Path) -> str:
    """'csv' or 'json', from the file's extension."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("csv", "json"):
        raise ConfigError(f"--output {path}: give a .csv or .json file")
    return suffix


class AnswerWriter:
    """Rows written as they come: a CSV (one header), a JSON list of records (null where a field is
    empty), or an aligned table on standard output."""

    def __init__(self, path: str | Path | None):
        self.path, self.batches = path, 0

    def __enter__(self) -> AnswerWriter:
        self.kind = output_format(self.path) if self.path else "text"
        self.file = open(self.path, "w") if self.path else sys.stdout  # noqa: SIM115 (closed in __exit__)
        if self.kind == "json":
            self.file.write("[")
        return self

    def __call__(self, answer: pd.DataFrame) -> None:
        if self.kind == "csv":
            answer.to_csv(self.file, index=False, header=self.batches == 0)
        elif self.kind == "json":
            records = json.loads(answer.to_json(orient="records"))
            text = ",\n".join(json.dumps(r) for r in records)
            self.file.write(("\n" if self.batches == 0 else ",\n") + text)
        else:
            self.file.write(as_text(answer, header=self.batches == 0) + "\n")
        self.file.flush()
        self.batches += 1

    def __exit__(self, *exc) -> None:
        if self.kind == "json":
            self.file.write("\n]\n")
        if self.path:
            self.file.close()


def as_text(answer: pd.DataFrame, header: bool = True) -> str:
    """The rows as an aligned table, probabilities to three places, empty fields blank."""
    shown = answer.copy()
    for column in ("p_negative", "p_positive"):
        shown[column] = [f"{v:.3f}" if pd.notna(v) else "" for v in answer[column]]
    return shown.fillna("").to_string(index=False, header=header)


def summary_line(written: int, failed: int) -> str:
    return f"{written - failed} of {written} files scored; {failed} failed"
