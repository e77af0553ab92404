from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from crossemo.data.demo import write_wav
from crossemo.data.features import feature_names
from crossemo.models.rbm import RBM

REPO = Path(__file__).resolve().parents[1]


def cli_status(argv: list[str]) -> int:
    """Run `crossemo ARGV` in this process; its exit status. A message exit (a user's mistake) is
    printed to stderr with status 1, as the interpreter does."""
    from crossemo.cli import main

    try:
        main(argv)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            return 1
        return int(stop.code or 0)
    return 0


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


def tone(
    path: Path, seconds: float = 0.6, rate: int = 16000, channels: int = 1, f0: float = 180.0, seed: int = 0
) -> Path:
    """A short voiced-like WAV (harmonics plus a little noise) for fixture trees."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    signal = 0.3 * voiced / np.abs(voiced).max() + 0.01 * rng.standard_normal(len(t))
    write_wav(path, np.tile(signal, (channels, 1)), rate)
    return path


#: A models: section for scenario runs on `feature_table`: the SVM, which ignores unlabeled rows, and a
#: DBN pretrained on the unlabeled pool alone (one stack per seed), small enough for seconds a scenario.
TINY_MODELS = {
    "svm": {"model": "svm"},
    "dbn_tiny": {
        "model": "dbn",
        "hidden": [8],
        "pretrain_data": "unlabeled",
        "pretrain": {"epochs": 2, "batch_size": 32},
        "finetune": {"max_epochs": 3, "batch_size": 32},
    },
}


def feature_table(seed: int = 0) -> pd.DataFrame:
    """Three small corpora, three languages, whose first features carry valence."""
    rng = np.random.default_rng(seed)
    frames = []
    for corpus, language, shift in (("a", "x", 1.0), ("b", "y", 0.8), ("c", "z", 1.2)):
        n = 60
        valence = np.where(rng.random(n) < 0.5, "negative", "positive")
        x = rng.normal(0, 1, (n, 88)) + shift * (valence == "positive")[:, None] * (np.arange(88) < 10)
        frame = pd.DataFrame(x.astype(np.float32), columns=feature_names())
        frame.insert(0, "corpus", corpus)
        frame.insert(1, "language", language)
        frame.insert(2, "speaker", [f"s{i % 4}" for i in range(n)])
        frame.insert(3, "utterance_id", [f"{corpus}{i}" for i in range(n)])
        frame.insert(4, "valence", valence)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def speaker_table(seed: int = 0, speakers: int = 3, rows: int = 40) -> pd.DataFrame:
    """Like `feature_table`, with speakers of `rows` utterances (enough for their own statistics:
    MIN_SPEAKER_ROWS) whose features are shifted by a speaker offset that per-speaker standardising removes."""
    rng = np.random.default_rng(seed)
    frames = []
    for corpus in ("a", "b", "c"):
        for s in range(speakers):
            valence = np.where(rng.random(rows) < 0.5, "negative", "positive")
            signal = (valence == "positive")[:, None] * (np.arange(88) < 10)
            x = rng.normal(0, 1, (rows, 88)) + signal + rng.normal(0, 3, 88)  # the speaker's own offset
            frame = pd.DataFrame(x.astype(np.float32), columns=feature_names())
            frame.insert(0, "corpus", corpus)
            frame.insert(1, "language", corpus)
            frame.insert(2, "speaker", f"s{s}")
            frame.insert(3, "utterance_id", [f"{corpus}{s}-{i}" for i in range(rows)])
            frame.insert(4, "valence", valence)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


D = torch.float64  # exact comparisons with an enumerated RBM need double precision


def states(n: int) -> torch.Tensor:
    """Every binary vector of length n, one per row."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=D)


def log_likelihood(rbm: RBM, data: torch.Tensor) -> float:
    """Exact mean log-likelihood of a 4-visible RBM, by enumerating the partition function."""
    with torch.no_grad():
        log_z = torch.logsumexp(-rbm.free_energy(states(4)), 0)
        return float((-rbm.free_energy(data) - log_z).mean())


def free_port() -> int:
    """A port nothing listens on now (servers started by the tests bind it next)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process=None, timeout: float = 120, log: Path | None = None) -> None:
    """Until `url` answers (any status below 500), or fail naming the URL (and the process' exit, with
    the end of its log when given)."""
    import time

    import requests

    tail = lambda: log.read_text()[-2000:] if log is not None and log.is_file() else ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the server for {url} exited with status {process.returncode}\n{tail()}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    if process is not None:
        process.kill()
    pytest.fail(f"{url} did not answer within {timeout:.0f} s\n{tail()}")


def postgres_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@contextlib.contextmanager
def postgres_server(databases=()):
    """A PostgreSQL server of its own (skips the test without the server binaries): initdb in a
    temporary folder, a free port, trust auth on 127.0.0.1 only, role `crossemo`, these databases.
    Yields its URL without a database. PostgreSQL refuses to run as root, so as root it runs as the
    `postgres` user."""
    import pwd
    import tempfile

    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="crossemo-postgres-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        account = pwd.getpwnam(user)
        os.chown(root, account.pw_uid, account.pw_gid)
    port = free_port()

    def run(*command: str) -> None:
        done = subprocess.run(command, user=user, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"

    run(str(binaries / "initdb"), "-D", str(root / "data"), "-U", "crossemo", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(binaries / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"), "-o", options, "-w", "start"
    )
    try:
        for database in databases:
            run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "crossemo", database)
        yield f"postgresql://crossemo@127.0.0.1:{port}"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
