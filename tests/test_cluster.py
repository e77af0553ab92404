"""Experiment runs on a real Dask cluster (a LocalCluster of two worker processes): the same metrics as
the local executor, each pretrained stack computed once in the MLflow artifact store, and a worker
killed midway changes nothing but the time."""

from __future__ import annotations

import os
import signal
import threading
import time

import mlflow
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from crossemo.errors import ConfigError
from crossemo.experiments.runner import ExperimentSettings, Runner
from crossemo.experiments.stack_store import ArtifactStackStore

from .conftest import feature_table

pytestmark = pytest.mark.slow

MODELS = {
    "svm": {"model": "svm"},
    "dbn_tiny": {
        "model": "dbn",
        "hidden": [8],
        "pretrain_data": "unlabeled",  # one shared pool: every fit of a seed asks for the same stack
        "pretrain": {"epochs": 3, "batch_size": 32},
        "finetune": {"max_epochs": 150, "min_epochs": 150, "batch_size": 16},  # units of seconds
    },
}
COLUMNS = ["model", "source", "target", "seed", "accuracy", "uar", "macro_f1", "confusion"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("dask")  # the workers' spill space, not the system's temporary folder
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, local_directory=scratch
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> pd.DataFrame:
    """The local executor's results: what the cluster must reproduce."""
    root = tmp_path_factory.mktemp("local")
    old = os.getcwd()
    os.chdir(root)
    try:
        return run(root)
    finally:
        os.chdir(old)


def settings(tmp_path, **kw) -> ExperimentSettings:
    defaults = dict(
        models=("svm", "dbn_tiny"),
        seeds=(0, 1),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        cache_dir=str(tmp_path / "stacks"),
        log_models=False,
        workers=2,
    )
    return ExperimentSettings(**{**defaults, **kw})


def run(tmp_path, **kw) -> pd.DataFrame:
    return Runner("single_source", feature_table(), MODELS, settings(tmp_path, **kw), progress=False).run()


def test_dask_gives_the_local_executors_metrics_and_pretrains_each_stack_once(cluster, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_dask = run(tmp_path / "dask", executor="dask", scheduler_address=cluster.scheduler_address)
    pd.testing.assert_frame_equal(local[COLUMNS], on_dask[COLUMNS])
    assert not (tmp_path / "dask" / "stacks").exists()  # no local stack cache on the cluster
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/dask/mlflow.db")
    stacks = client.get_experiment_by_name(ArtifactStackStore.EXPERIMENT)
    runs = client.search_runs([stacks.experiment_id])
    # Three sources x two seeds ask for a stack; two workers asked at once, yet one per seed was made.
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["stack_key"] for r in runs}) == 2


def test_a_worker_killed_midway_has_its_units_rerun_and_the_numbers_stay(cluster, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = {}

    def scenario():
        outcome["results"] = run(tmp_path / "dask", executor="dask", scheduler_address=cluster.scheduler_address)

    with Client(cluster.scheduler_address) as client:
        worker = threading.Thread(target=scenario)
        worker.start()
        victim = _busy_worker(client, f"sqlite:///{tmp_path}/dask/mlflow.db")
        os.kill(client.run(os.getpid)[victim], signal.SIGKILL)  # the nanny starts a fresh worker
        worker.join(timeout=600)
    assert not worker.is_alive()
    pd.testing.assert_frame_equal(local[COLUMNS], outcome["results"][COLUMNS])
    store = mlflow.MlflowClient(f"sqlite:///{tmp_path}/dask/mlflow.db")
    experiment = store.get_experiment_by_name("crossemo-single_source")
    children = store.search_runs([experiment.experiment_id], "tags.model != ''")
    kept = set(outcome["results"]["run_id"])
    pretraining = [r for r in children if r.data.tags.get("stage") == "pretraining"]
    assert pretraining and all(r.info.status in ("FINISHED", "KILLED") for r in pretraining)
    children = [r for r in children if r.data.tags.get("stage") != "pretraining"]
    lost = [r for r in children if r.info.run_id not in kept]
    assert lost  # the killed worker's open runs, from the attempt that was run again
    assert all(r.info.status == "KILLED" and r.data.tags.get("lost_with_worker") == "true" for r in lost)
    assert all(r.info.status == "FINISHED" for r in children if r.info.run_id in kept)


def _busy_worker(client: Client, store: str, timeout: float = 180) -> str:
    """A worker in the middle of a unit's fit (its nested run open), not of a stack warm-up: a warm-up
    killed midway is simply pretrained again and leaves no lost unit run to check."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _open_unit_runs(store):
            stacks = client.call_stack()  # {worker: {task key: the frames it is running}}
            fitting = [w for w, tasks in stacks.items() if any(_in_a_units_fit(f) for f in tasks.values())]
            if fitting:
                return fitting[0]
        time.sleep(0.1)
    raise AssertionError("no worker was in the middle of a unit's fit within the timeout")


def _in_a_units_fit(frames: list[str]) -> bool:
    text = "\n".join(frames)
    return "in run_unit" in text and "in _fit" in text


def _open_unit_runs(store: str) -> int:
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("crossemo-single_source")
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING' and tags.model != ''")
    return sum(r.data.tags.get("stage") != "pretraining" for r in runs)


def test_dask_workers_with_several_threads_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None, local_directory=tmp_path
    ) as threaded:
        with pytest.raises(ConfigError, match="--nthreads 1"):
            run(tmp_path, executor="dask", scheduler_address=threaded.scheduler_address)


def test_dask_without_a_scheduler_address_names_both_ways_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="DASK_SCHEDULER_ADDRESS"):
        run(tmp_path, executor="dask")
