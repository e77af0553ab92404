"""openSMILE eGeMAPSv02 functionals (88 per utterance), cached per file, on several cores."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
from tqdm.auto import tqdm

from .audio import BadAudio, check_header, read_utterance
from .checked_files import discard, read_checked, write_checked
from .errors import ConfigError

log = logging.getLogger(__name__)


class OnBadAudio(StrEnum):
    STOP = "stop"  # fail the run, naming every bad file
    SKIP = "skip"  # leave the file out and list it in the rejection report


@dataclass(frozen=True)
class FeatureSettings:
    sampling_rate: int = 16000  # features change with the input rate: bring every file to one
    channel: int = 0
    min_duration: float = 0.25
    on_bad_audio: OnBadAudio = OnBadAudio.STOP
    workers: int = 2
    cache_dir: str = ".cache/egemaps"
    max_duration: float | None = None  # seconds; longer files are refused from their header (scoring)

    def __post_init__(self):
        object.__setattr__(self, "on_bad_audio", OnBadAudio(self.on_bad_audio))
        if self.workers < 1:
            raise ConfigError(f"features.workers must be at least 1, not {self.workers}")

    def fingerprint(self) -> str:
        """What the features depend on (not workers, cache place or the bad-file policy)."""
        keys = {
            "sampling_rate": self.sampling_rate,
            "channel": self.channel,
            "feature_set": "eGeMAPSv02",
            "opensmile": opensmile.__version__,
        }
        return json.dumps(keys, sort_keys=True)


@functools.cache
def _feature_names() -> tuple[str, ...]:
    return tuple(_smile(16000).feature_names)


def feature_names() -> list[str]:
    """openSMILE's own 88 column names, in its order (a fresh list: callers may not change the original)."""
    return list(_feature_names())


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The eGeMAPS columns a feature table holds, in openSMILE's order."""
    return [c for c in feature_names() if c in table.columns]


def labelled_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows with a valence label (not 'excluded'), re-indexed, and their eGeMAPS values as float32:
    what every fit starts from."""
    table = table[table["valence"] != "excluded"].reset_index(drop=True)
    return table, table[feature_columns(table)].to_numpy(np.float32)


def _smile(sampling_rate: int) -> opensmile.Smile:
    return opensmile.Smile(
        opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals, sampling_rate=sampling_rate, resample=True
    )


class FeatureCache:
    """One checksummed file per (file content, settings): a rerun or an added corpus computes only
    what is new, and a damaged entry is recomputed, never used."""

    def __init__(self, directory: str | Path, fingerprint: str):
        self.directory, self.fingerprint = Path(directory), fingerprint

    def key(self, path: Path) -> str:
        digest = hashlib.sha1(self.fingerprint.encode())
        digest.update(Path(path).read_bytes())
        return digest.hexdigest()

    def _file(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.f32"

    def get(self, key: str) -> np.ndarray | None:
        file = self._file(key)
        payload = read_checked(file)
        if payload is None:
            return None
        values = np.frombuffer(payload, dtype=np.float32)
        if values.shape != (len(feature_names()),) or not np.isfinite(values).all():
            discard(file, f"not {len(feature_names())} finite features")
            return None
        return values.copy()

    def put(self, key: str, values: np.ndarray) -> None:
        write_checked(self._file(key), np.ascontiguousarray(values, dtype=np.float32).tobytes())


_WORKER: dict = {}


def _init_worker(settings: FeatureSettings) -> None:
    # One Smile per process: building it costs more than extracting one short utterance.
    _WORKER["settings"] = settings
    _WORKER["smile"] = _smile(settings.sampling_rate)
    _WORKER["cache"] = FeatureCache(settings.cache_dir, settings.fingerprint())


def _extract_one(path: str) -> tuple[np.ndarray | None, str | None]:
    """(features, None) or (None, reason): errors travel back as values so none is lost."""
    settings, cache = _WORKER["settings"], _WORKER["cache"]
    try:
        key = cache.key(Path(path))
    except OSError as error:
        return None, f"unreadable ({error.strerror})"
    try:
        if settings.max_duration is not None:  # a cached file is still held to this run's limit
            check_header(path, path, settings.max_duration)
        cached = cache.get(key)
        if cached is not None:
            return cached, None
        utterance = read_utterance(path, settings.channel, settings.min_duration)  # header checked above
    except BadAudio as bad:
        return None, bad.reason
    values = _WORKER["smile"].process_signal(utterance.signal, utterance.sampling_rate).to_numpy()[0]
    if np.isnan(values).any():
        return None, "openSMILE returned NaN features (too little voiced speech)"
    values = values.astype(np.float32)
    cache.put(key, values)
    return values, None


def extract(
    paths: list[Path], settings: FeatureSettings, progress: str | None = "eGeMAPS"
) -> tuple[np.ndarray, dict[int, str]]:
    """Features for each path (rows of NaN where bad) and {index: reason} for the bad ones;
    `progress` is the progress bar's label (None: no bar)."""
    n_features = len(feature_names())
    out = np.full((len(paths), n_features), np.nan, dtype=np.float32)
    bad: dict[int, str] = {}
    jobs = [str(p) for p in paths]
    chunk = max(1, min(32, len(jobs) // (settings.workers * 8) or 1))
    with ProcessPoolExecutor(settings.workers, initializer=_init_worker, initargs=(settings,)) as pool:
        results = pool.map(_extract_one, jobs, chunksize=chunk)
        for i, (values, reason) in enumerate(
            tqdm(results, total=len(jobs), desc=progress, unit="file", disable=progress is None)
        ):
            if reason is None:
                out[i] = values
            else:
                bad[i] = reason
    return out, bad


def extract_table(
    table: pd.DataFrame, root: Path, settings: FeatureSettings, progress: str = "eGeMAPS"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table joined with the 88 features, rejected files with reasons). Raises on bad files under `stop`."""
    paths = [Path(root) / p for p in table["path"]]
    values, bad = extract(paths, settings, progress)
    rejected = pd.DataFrame(
        {"path": [str(table["path"].iloc[i]) for i in bad], "reason": list(bad.values())}, columns=["path", "reason"]
    )
    if bad and settings.on_bad_audio is OnBadAudio.STOP:
        listing = "\n".join(f"  {root / p}: {r}" for p, r in zip(rejected["path"], rejected["reason"]))
        raise BadAudio(
            root,
            f"{len(bad)} unusable audio file(s):\n{listing}\n"
            "Fix or remove them, or set features.on_bad_audio: skip to list them in a report",
        )
    keep = np.ones(len(table), dtype=bool)
    keep[list(bad)] = False
    features = pd.DataFrame(values[keep], columns=feature_names(), index=table.index[keep])
    return pd.concat([table[keep], features], axis=1).reset_index(drop=True), rejected
