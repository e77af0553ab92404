"""Where pretrained RBM stacks are kept, keyed by their exact inputs, so that each is computed once.

- `StackCache`: a folder on this machine (the local executor); a file lock per key makes worker
  processes that need the same stack wait for the one pretraining it.
- `ArtifactStackStore`: the MLflow artifact store behind the tracking server, which every worker of
  a cluster reaches without a shared disk (the Dask executor); a cluster-wide Dask lock per key does
  the same across machines.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from .checked_files import discard, read_checked, write_checked
from .dbn import PretrainSettings, RBMStack

log = logging.getLogger(__name__)


#: The modules whose code makes a stack: the RBMs, the nets that hold them, their training loop, this cache.
STACK_CODE = ("crossemo.rbm", "crossemo.dbn", "crossemo.training", "crossemo.stacks")


@functools.cache
def stack_code_fingerprint() -> str:
    """The source of the modules that make a stack: an edit to them must not hand back an old stack."""
    digest = hashlib.sha1()
    for name in STACK_CODE:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


def stack_key(x: np.ndarray, hidden: tuple[int, ...], settings: PretrainSettings, seed: int) -> str:
    """The same rows, sizes, settings, seed, code and torch version give the same stack."""
    digest = hashlib.sha1(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    digest.update(repr((x.shape, tuple(hidden), settings, seed, torch.__version__)).encode())
    digest.update(stack_code_fingerprint().encode())
    return digest.hexdigest()


def _dump(stack: RBMStack) -> bytes:
    buffer = io.BytesIO()
    torch.save(stack.state_dict(), buffer)
    return buffer.getvalue()


def _load(payload: bytes, n_inputs: int, hidden: tuple[int, ...]) -> RBMStack:
    stack = RBMStack(n_inputs, hidden)
    stack.load_state_dict(torch.load(io.BytesIO(payload), weights_only=True))
    return stack


class StackCache:
    """Pretrained stacks in a local folder, one checksummed file per key."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def get(self, key: str, n_inputs: int, hidden: tuple[int, ...]) -> RBMStack | None:
        """The cached stack, or None when absent or damaged (a damaged entry is removed and rebuilt)."""
        path = self.directory / f"{key}.stack"
        payload = read_checked(path)
        if payload is None:
            return None
        try:
            stack = _load(payload, n_inputs, hidden)
        except (RuntimeError, ValueError, KeyError, EOFError) as error:  # intact file, wrong contents
            discard(path, f"not a stack of these sizes ({error})")
            return None
        log.info("pretrained stack %s taken from the cache", key[:10])
        return stack

    def put(self, key: str, stack: RBMStack) -> None:
        write_checked(self.directory / f"{key}.stack", _dump(stack))

    def get_or_build(self, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
        """The cached stack, or `build()`'s, stored."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(self.directory / f"{key}.lock"):
            return _get_or_build(self, key, n_inputs, hidden, build)


class ArtifactStackStore:
    """Pretrained stacks as MLflow artifacts: one run per stack in the experiment `EXPERIMENT`,
    tagged with its key, holding the checksummed `stack.pt`."""

    EXPERIMENT = "crossemo-pretrained-stacks"
    ARTIFACT = "stack.pt"

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def _client(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)

    def _run_of(self, key: str):
        client = self._client()
        experiment = client.get_experiment_by_name(self.EXPERIMENT)
        if experiment is None:
            return None
        runs = client.search_runs(
            [experiment.experiment_id],
            f"tags.stack_key = '{key}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        return runs[0] if runs else None

    def get(self, key: str, n_inputs: int, hidden: tuple[int, ...]) -> RBMStack | None:
        run = self._run_of(key)
        if run is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = self._client().download_artifacts(run.info.run_id, self.ARTIFACT, tmp)
            payload = read_checked(Path(path))
        if payload is None:  # damaged in the store: the run no longer counts, the stack is rebuilt
            self._client().set_terminated(run.info.run_id, "FAILED")
            return None
        log.info("pretrained stack %s taken from the artifact store", key[:10])
        return _load(payload, n_inputs, hidden)

    def put(self, key: str, stack: RBMStack) -> None:
        client = self._client()
        run = client.create_run(self._experiment_id(), run_name=f"stack {key[:10]}", tags={"stack_key": key})
        with tempfile.TemporaryDirectory() as tmp:
            write_checked(Path(tmp) / self.ARTIFACT, _dump(stack))
            client.log_artifact(run.info.run_id, str(Path(tmp) / self.ARTIFACT))
        client.set_terminated(run.info.run_id)  # FINISHED only once the artifact is whole in the store

    def _experiment_id(self) -> str:
        from . import tracking

        tracking.configure(self.tracking_uri)
        return tracking.experiment(self.EXPERIMENT)

    def get_or_build(self, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
        with _cluster_lock(f"crossemo-stack-{key}"):
            return _get_or_build(self, key, n_inputs, hidden, build)


def _get_or_build(store, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
    """Under the caller's lock: the stored stack, or `build()`'s, stored."""
    stack = store.get(key, n_inputs, hidden)
    if stack is None:
        stack = build()
        store.put(key, stack)
    return stack


def _cluster_lock(name: str):
    """A Dask lock held through the scheduler when running on a Dask worker (released when its holder
    dies, after the lease times out); a file lock in the temporary folder elsewhere."""
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):
        return FileLock(Path(tempfile.gettempdir()) / f"{name}.lock")
    return Lock(name)
