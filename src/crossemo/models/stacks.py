"""Where pretrained RBM stacks are kept, keyed by their exact inputs, so that each is computed once.

- `StackCache`: a folder on this machine (the local executor); a file lock per key makes worker
  processes that need the same stack wait for the one pretraining it.
- `crossemo.experiments.stack_store.ArtifactStackStore`: the MLflow artifact store behind the tracking
  server, for a cluster's workers (the Dask executor).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from crossemo.data.checked_files import discard, read_checked, write_checked
from crossemo.models.nets import PretrainSettings, RBMStack

log = logging.getLogger(__name__)


#: The modules whose code makes a stack: the RBMs, the nets that hold them, their training loop, this cache.
STACK_CODE = ("crossemo.models.rbm", "crossemo.models.nets", "crossemo.models.training", "crossemo.models.stacks")


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


def dump_stack(stack: RBMStack) -> bytes:
    buffer = io.BytesIO()
    torch.save(stack.state_dict(), buffer)
    return buffer.getvalue()


def load_stack(payload: bytes, n_inputs: int, hidden: tuple[int, ...]) -> RBMStack:
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
            stack = load_stack(payload, n_inputs, hidden)
        except (RuntimeError, ValueError, KeyError, EOFError) as error:  # intact file, wrong contents
            discard(path, f"not a stack of these sizes ({error})")
            return None
        log.info("pretrained stack %s taken from the cache", key[:10])
        return stack

    def put(self, key: str, stack: RBMStack) -> None:
        write_checked(self.directory / f"{key}.stack", dump_stack(stack))

    def get_or_build(self, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
        """The cached stack, or `build()`'s, stored."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(self.directory / f"{key}.lock"):
            return fetch_or_build(self, key, n_inputs, hidden, build)


def fetch_or_build(store, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
    """Under the caller's lock: the stored stack, or `build()`'s, stored."""
    stack = store.get(key, n_inputs, hidden)
    if stack is None:
        stack = build()
        store.put(key, stack)
    return stack
