"""openSMILE functionals per utterance (eGeMAPSv02, 88, by default; emobase; ComParE_2016), cached per
file, on several cores."""

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

from crossemo.data.audio import BadAudio, Utterance, check_header, read_utterance
from crossemo.data.checked_files import discard, read_checked, write_checked
from crossemo.errors import ConfigError, choice

log = logging.getLogger(__name__)


class FeatureSet(StrEnum):
    """The openSMILE functionals `features.feature_set` may name (openSMILE's own names)."""

    EGEMAPS = "eGeMAPSv02"  # 88: the paper's set, and the field's minimal standard
    EMOBASE = "emobase"  # 988
    COMPARE = "ComParE_2016"  # 6373: the INTERSPEECH Computational Paralinguistics challenge set


class OnBadAudio(StrEnum):
    STOP = "stop"  # fail the run, naming every bad file
    SKIP = "skip"  # leave the file out and list it in the rejection report


@dataclass(frozen=True)
class FeatureSettings:
    sampling_rate: int = 16000  # features change with the input rate: bring every file to one
    channel: int = 0  # the channel read (never the mean: EMOVO's channels are different microphones)
    min_duration: float = 0.25  # seconds; shorter files are rejected with their name
    # stop: fail naming every bad file; skip: leave them out, listed in features/<corpus>.rejected.csv
    on_bad_audio: OnBadAudio = OnBadAudio.STOP
    workers: int = 2  # extraction processes (the features do not depend on it)
    cache_dir: str = ".cache/egemaps"  # the per-file cache, keyed by content and settings
    max_duration: float | None = None  # seconds; longer files are refused from their header (scoring)
    # openSMILE functionals: eGeMAPSv02 (88, the paper's), emobase (988), ComParE_2016 (6373)
    feature_set: FeatureSet = FeatureSet.EGEMAPS

    def __post_init__(self):
        object.__setattr__(self, "on_bad_audio", choice(OnBadAudio, self.on_bad_audio, "features.on_bad_audio"))
        object.__setattr__(self, "feature_set", choice(FeatureSet, self.feature_set, "features.feature_set"))
        if self.workers < 1:
            raise ConfigError(f"features.workers must be at least 1, not {self.workers}")

    def fingerprint(self) -> str:
        """What the features depend on (not workers, cache place or the bad-file policy)."""
        keys = {
            "sampling_rate": self.sampling_rate,
            "channel": self.channel,
            "feature_set": str(self.feature_set),
            "opensmile": opensmile.__version__,
        }
        return json.dumps(keys, sort_keys=True)


@functools.cache
def _feature_names(feature_set: FeatureSet) -> tuple[str, ...]:
    return tuple(smile(16000, feature_set).feature_names)


def feature_names(feature_set: FeatureSet = FeatureSet.EGEMAPS) -> list[str]:
    """openSMILE's own column names for the set, in its order (a fresh list: callers may not change
    the original)."""
    return list(_feature_names(FeatureSet(feature_set)))


def table_feature_set(table: pd.DataFrame) -> FeatureSet:
    """The set a feature table was made with, known by its columns (the sets share no name)."""
    for feature_set in FeatureSet:
        if feature_names(feature_set)[0] in table.columns:
            return feature_set
    raise ConfigError(f"the table holds none of the openSMILE sets' columns ({', '.join(FeatureSet)})")


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns a table holds, in openSMILE's order."""
    return [c for c in feature_names(table_feature_set(table)) if c in table.columns]


def labelled_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows with a valence label (not 'excluded'), re-indexed, and their feature values as float32:
    what every fit starts from."""
    table = table[table["valence"] != "excluded"].reset_index(drop=True)
    return table, table[feature_columns(table)].to_numpy(np.float32)


def smile(sampling_rate: int, feature_set: FeatureSet = FeatureSet.EGEMAPS) -> opensmile.Smile:
    return opensmile.Smile(
        opensmile.FeatureSet[feature_set.value],
        opensmile.FeatureLevel.Functionals,
        sampling_rate=sampling_rate,
        resample=True,
    )


class FeatureCache:
    """One checksummed file per (file content, settings): a rerun or an added corpus computes only
    what is new, and a damaged entry is recomputed, never used."""

    def __init__(self, directory: str | Path, fingerprint: str, n_features: int):
        self.directory, self.fingerprint, self.n_features = Path(directory), fingerprint, n_features

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
        if values.shape != (self.n_features,) or not np.isfinite(values).all():
            discard(file, f"not {self.n_features} finite features")
            return None
        return values.copy()

    def put(self, key: str, values: np.ndarray) -> None:
        write_checked(self._file(key), np.ascontiguousarray(values, dtype=np.float32).tobytes())


_WORKER: dict = {}


def _init_worker(settings: FeatureSettings) -> None:
    # One Smile per process: building it costs more than extracting one short utterance.
    _WORKER["settings"] = settings
    _WORKER["smile"] = smile(settings.sampling_rate, settings.feature_set)
    n_features = len(feature_names(settings.feature_set))
    _WORKER["cache"] = FeatureCache(settings.cache_dir, settings.fingerprint(), n_features)


def _extract_one(path: str) -> tuple[np.ndarray | None, str | None]:
    """(features, None) or (None, reason): errors travel back as values so none is lost."""
    settings, cache = _WORKER["settings"], _WORKER["cache"]
    try:
        key = cache.key(Path(path))
    except OSError as error:
        return None, f"unreadable ({error.strerror})"
    try:
        # A cached file is still held to this run's limits: the cache key leaves them out.
        check_header(path, path, settings.max_duration, settings.min_duration)
        cached = cache.get(key)
        if cached is not None:
            return cached, None
        utterance = read_utterance(path, settings.channel, settings.min_duration)  # header checked above
        values = functionals(_WORKER["smile"], utterance, path)
    except BadAudio as bad:
        return None, bad.reason
    cache.put(key, values)
    return values, None


def functionals(smile: opensmile.Smile, utterance: Utterance, name) -> np.ndarray:
    """The one extraction: openSMILE's functionals of one utterance (the features stage, `predict`,
    `evaluate` and the server all come here). BadAudio when openSMILE finds too little voiced speech."""
    values = smile.process_signal(utterance.signal, utterance.sampling_rate).to_numpy()[0]
    if np.isnan(values).any():
        raise BadAudio(name, "openSMILE found too little voiced speech (its features are NaN)")
    return values.astype(np.float32)


class Extractor:
    """Worker processes that extract features, kept open across calls (batch after batch)."""

    def __init__(self, settings: FeatureSettings):
        self.settings = settings

    def __enter__(self) -> Extractor:
        settings = self.settings
        self._pool = ProcessPoolExecutor(settings.workers, initializer=_init_worker, initargs=(settings,))
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()

    def __call__(self, paths: list[Path], progress: str | None = "") -> tuple[np.ndarray, dict[int, str]]:
        """Features for each path (rows of NaN where bad) and {index: reason} for the bad ones.
        The progress bar is labelled with the feature set, then `progress` (e.g. the corpus); None: no bar."""
        settings = self.settings
        out = np.full((len(paths), len(feature_names(settings.feature_set))), np.nan, dtype=np.float32)
        bad: dict[int, str] = {}
        jobs = [str(p) for p in paths]
        chunk = max(1, min(32, len(jobs) // (settings.workers * 8) or 1))
        results = self._pool.map(_extract_one, jobs, chunksize=chunk)
        label = f"{settings.feature_set} {progress or ''}".strip()
        for i, (values, reason) in enumerate(
            tqdm(results, total=len(jobs), desc=label, unit="file", disable=progress is None)
        ):
            if reason is None:
                out[i] = values
            else:
                bad[i] = reason
        return out, bad


def extract(
    paths: list[Path], settings: FeatureSettings, progress: str | None = ""
) -> tuple[np.ndarray, dict[int, str]]:
    """Features for each path (rows of NaN where bad) and {index: reason} for the bad ones."""
    with Extractor(settings) as extractor:
        return extractor(paths, progress)


def extract_table(
    table: pd.DataFrame, root: Path, settings: FeatureSettings, progress: str | None = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table joined with the features, rejected files with reasons). Raises on bad files under `stop`."""
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
    features = pd.DataFrame(values[keep], columns=feature_names(settings.feature_set), index=table.index[keep])
    return pd.concat([table[keep], features], axis=1).reset_index(drop=True), rejected
