"""Pretrained stacks in the MLflow artifact store behind the tracking server: every worker of a
cluster reaches it without a shared disk (the Dask executor); a cluster-wide Dask lock per key makes
workers that need the same stack wait for the one pretraining it."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
from filelock import FileLock

from crossemo.data.checked_files import read_checked, write_checked
from crossemo.experiments import tracking
from crossemo.models.nets import RBMStack
from crossemo.models.stacks import dump_stack, fetch_or_build, load_stack

log = logging.getLogger(__name__)


class ArtifactStackStore:
    """Pretrained stacks as MLflow artifacts: one run per stack in the experiment `EXPERIMENT`,
    tagged with its key, holding the checksummed `stack.pt`."""

    EXPERIMENT = "crossemo-pretrained-stacks"
    ARTIFACT = "stack.pt"

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def _client(self):

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
        return load_stack(payload, n_inputs, hidden)

    def put(self, key: str, stack: RBMStack) -> None:
        client = self._client()
        run = client.create_run(self._experiment_id(), run_name=f"stack {key[:10]}", tags={"stack_key": key})
        with tempfile.TemporaryDirectory() as tmp:
            write_checked(Path(tmp) / self.ARTIFACT, dump_stack(stack))
            client.log_artifact(run.info.run_id, str(Path(tmp) / self.ARTIFACT))
        client.set_terminated(run.info.run_id)  # FINISHED only once the artifact is whole in the store

    def _experiment_id(self) -> str:
        tracking.configure(self.tracking_uri)
        return tracking.experiment(self.EXPERIMENT)

    def get_or_build(self, key: str, n_inputs: int, hidden: tuple[int, ...], build) -> RBMStack:
        with _cluster_lock(f"crossemo-stack-{key}"):
            return fetch_or_build(self, key, n_inputs, hidden, build)


def _cluster_lock(name: str):
    """A Dask lock held through the scheduler when running on a Dask worker (released when its holder
    dies, after the lease times out); a file lock in the temporary folder elsewhere."""
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):
        return FileLock(Path(tempfile.gettempdir()) / f"{name}.lock")
    return Lock(name)
