"""Reading a request: each row's audio (base64 or a path under the audio root) or features, and
its optional speaker. Bad inputs raise MlflowException with INVALID_PARAMETER_VALUE, which the
MLflow scoring server answers with HTTP 400 and the message, and keeps serving."""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from crossemo.data.audio import BadAudio
from crossemo.serving.pipeline import MAX_AUDIO_SECONDS, ValencePipeline  # noqa: F401 (part of the request rules)

AUDIO_COLUMNS = ("audio_base64", "audio_path")


SPEAKER_COLUMN = "speaker"  # optional: rows of one speaker are standardised together, as in training


MAX_AUDIO_BYTES = 20 * 1024 * 1024  # one decoded file


MAX_REQUEST_AUDIO_BYTES = 64 * 1024 * 1024  # all rows' audio together


MAX_ROWS = 256


#: audio_path is off unless the server names the one folder it may read from (`crossemo serve --audio-root`).
AUDIO_ROOT_ENV = "CROSSEMO_AUDIO_ROOT"


#: A served `speaker` value longer than this is refused: an id, a session or a caller, not a document.
MAX_SPEAKER_CHARS = 200


def _bad(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def rows_to_features(pipeline: ValencePipeline, frame: pd.DataFrame) -> np.ndarray:
    """One feature vector per row, from whichever input the row carries; errors name the row."""
    names = pipeline.feature_names
    columns = f"{len(names)} {pipeline.features.feature_set} columns"  # for messages: once, not per row
    known = set(AUDIO_COLUMNS) | set(names)
    if not known & set(frame.columns):
        # MLflow drops columns outside the signature before the model sees them.
        raise _bad(
            f"missing columns: send audio_base64 (a base64 WAV), audio_path, or the {columns} by "
            "openSMILE's names; unknown columns are ignored"
        )
    if len(frame) == 0:
        raise _bad("empty request: send at least one row")
    if len(frame) > MAX_ROWS:
        raise _bad(f"too large: {len(frame)} rows > {MAX_ROWS} per request; send batches")
    _check_request_size(frame)
    present = [c for c in names if c in frame.columns]
    out = np.empty((len(frame), len(names)), dtype=np.float32)
    for i, row in enumerate(frame.to_dict("records")):
        b64, path = row.get("audio_base64"), row.get("audio_path")
        try:
            if isinstance(b64, str) and b64:
                out[i] = pipeline.audio_features(io.BytesIO(_decode(b64, i)), f"row {i} (audio_base64)")
            elif isinstance(path, str) and path:
                out[i] = pipeline.audio_features(allowed_path(path, i), f"row {i} ({path})")
            elif len(present) == len(names):
                out[i] = _feature_row(row, names, i, columns)
            else:
                missing = [c for c in names if c not in present or pd.isna(row.get(c))]
                raise _bad(
                    f"row {i}: missing columns: give audio_base64 (a base64 WAV), audio_path, or all "
                    f"{columns} by openSMILE's names ({len(missing)} missing, e.g. {missing[0]}); "
                    "columns outside the model's signature are ignored"
                )
        except BadAudio as bad:
            raise _bad(str(bad)) from None
    return out


def _check_request_size(frame: pd.DataFrame) -> None:
    if "audio_base64" in frame.columns:
        total = sum(len(v) for v in frame["audio_base64"] if isinstance(v, str)) * 3 // 4
        if total > MAX_REQUEST_AUDIO_BYTES:
            raise _bad(
                f"too large: {total // 2**20} MiB of audio in one request > "
                f"{MAX_REQUEST_AUDIO_BYTES // 2**20} MiB; send smaller batches"
            )


def _feature_row(row: dict, names: list[str], i: int, columns: str) -> np.ndarray:
    """The feature values of a row: numbers, finite, or a 400 naming the row and the column."""
    values = np.empty(len(names), dtype=np.float64)
    for j, name in enumerate(names):
        value = row[name]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise _bad(
                f"row {i}: missing columns: give audio_base64 (a base64 WAV), audio_path, or all "
                f"{columns} by openSMILE's names (e.g. {name} is empty); columns outside the "
                "model's signature are ignored"
            )
        if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)):
            raise _bad(f"row {i}: {name} must be a number, not {type(value).__name__}")
        if not np.isfinite(value) or abs(value) > 1e12:
            raise _bad(f"row {i}: {name} must be a finite number of plausible size, not {value!r}")
        values[j] = value
    return values.astype(np.float32)


def allowed_path(path: str, row: int) -> Path:
    """A path the server may read: only with an audio root configured, and only inside it.

    `..`, absolute paths outside the root and symlinks leading out are refused: a client must not
    learn which files exist on the server, nor make it read them."""
    root = os.environ.get(AUDIO_ROOT_ENV)
    if not root:
        raise _bad(
            f"row {row}: audio_path is disabled on this server; send audio_base64 (a base64 WAV), or "
            f"start the server with an allowed folder (crossemo serve --audio-root DIR, or {AUDIO_ROOT_ENV})"
        )
    root_path = Path(root).resolve()
    if "\0" in path or ".." in Path(path).parts:
        raise _bad(f"row {row}: audio_path must not contain '..' or NUL")
    resolved = (root_path / path).resolve()  # an absolute path stays absolute; links are followed
    if not resolved.is_relative_to(root_path):
        raise _bad(f"row {row}: audio_path {path!r} is outside the server's audio root")
    if not resolved.is_file():
        raise _bad(f"row {row}: audio_path {path!r} is not a file under the server's audio root")
    return resolved


def _decode(text: str, row: int) -> bytes:
    if len(text) > MAX_AUDIO_BYTES * 4 // 3 + 4:
        raise _bad(f"row {row}: too large: audio over {MAX_AUDIO_BYTES // 2**20} MiB")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"row {row}: audio_base64 is not valid base64") from None
    if not data:
        raise _bad(f"row {row}: empty audio: audio_base64 decodes to no bytes")
    return data


def request_speakers(frame: pd.DataFrame) -> list | None:
    """The optional speaker column: a string per row, or empty (None, NaN, ""): a lone row.
    Anything else gets a 400 naming the row."""
    if SPEAKER_COLUMN not in frame.columns:
        return None
    speakers = []
    for i, value in enumerate(frame[SPEAKER_COLUMN]):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            speakers.append(None)
        elif not isinstance(value, str):
            raise _bad(
                f"row {i}: speaker must be a string (a speaker, session or caller id), not {type(value).__name__}"
            )
        elif len(value) > MAX_SPEAKER_CHARS:
            raise _bad(f"row {i}: speaker is {len(value)} characters long; give an id of at most {MAX_SPEAKER_CHARS}")
        else:
            speakers.append(value)
    return speakers
