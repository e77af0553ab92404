from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from crossemo.demo import write_wav

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(autouse=True)
def no_inherited_tracking_uri():
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which crossemo honours: without this,
    one test's store would become the next test's (and its subprocesses') default."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    if not (SHARED_CORPORA / "emodb").is_dir():
        pytest.skip(f"real corpora not found at {SHARED_CORPORA}")
    return SHARED_CORPORA


def tone(path: Path, seconds: float = 0.6, rate: int = 16000, channels: int = 1, f0: float = 180.0, seed: int = 0) -> Path:
    """A short voiced-like WAV (harmonics plus a little noise) for fixture trees."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    signal = 0.3 * voiced / np.abs(voiced).max() + 0.01 * rng.standard_normal(len(t))
    write_wav(path, np.tile(signal, (channels, 1)), rate)
    return path
