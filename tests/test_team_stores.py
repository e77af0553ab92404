"""The team setup on a real PostgreSQL server: Optuna studies shared by several workers, and
`mlflow server` (PostgreSQL behind it, artifacts served) holding experiments, registry and the served
model. Every server runs on the loopback address from a temporary folder and is stopped afterwards."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import requests

from crossemo.data.features import FeatureSettings, feature_names
from crossemo.experiments.runner import ExperimentSettings, Runner
from crossemo.experiments.tuning import prepare, tune
from crossemo.models.baselines import SVMValence
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import register

from .conftest import feature_table, free_port, postgres_server, wait_for_http
from .test_tuning import check_two_workers_share_one_study, data
from .test_tuning import settings as tune_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    with postgres_server(("mlflow", "optuna")) as url:
        yield url


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory):
    """`mlflow server` on PostgreSQL, serving its artifacts from a temporary folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = root / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--backend-store-uri",
                f"{postgres}/mlflow",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, timeout=180)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_tuning_workers_on_one_postgresql_study_record_every_trial_once(postgres, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_two_workers_share_one_study(tmp_path, tune_settings(tmp_path, storage=f"{postgres}/optuna"))


def test_a_killed_workers_trial_is_failed_by_the_heartbeat_and_resume_continues(postgres, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = tune_settings(
        tmp_path,
        storage=f"{postgres}/optuna",
        study_name="killed-worker",
        n_trials=2,  # the killed trial (failed) and one more after --resume
        heartbeat_interval=1,
        grace_period=3,
        finetune_max_epochs=400,  # trials of seconds: long enough to be killed in the middle of one
        finetune_patience=400,
    )
    table, x = data()
    prepare(s, resume=False)
    worker = multiprocessing.get_context("spawn").Process(target=tune, args=(table, x, s, True))
    worker.start()
    killed = _running_trial(s)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=60)
    time.sleep(s.grace_period + 1)  # the heartbeat goes stale
    study = tune(table, x, s, resume=True)  # `crossemo tune --resume`
    states = {t.number: t.state for t in study.trials}
    assert states[killed] == optuna.trial.TrialState.FAIL
    complete = [n for n, state in states.items() if state == optuna.trial.TrialState.COMPLETE]
    assert complete and max(complete) > killed  # the study went on past the dead trial
    assert len([t for t in study.trials if t.state.is_finished()]) >= s.n_trials


def _running_trial(s, timeout: float = 180) -> int:
    deadline = time.time() + timeout
    # one storage for the whole wait: a study loaded from a URL opens a connection pool of its own each
    # time, and a slow start (a busy machine) would pile up more than the server's 100 connections
    storage = optuna.storages.RDBStorage(s.storage)
    while time.time() < deadline:
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        if running:
            time.sleep(1.0)  # well inside the trial's fine-tuning
            return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started within the timeout")


def test_a_demo_experiment_through_mlflow_server_shows_every_nested_run_with_its_tags(
    tracking_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    settings = ExperimentSettings(
        models=("svm",), seeds=(0, 1), tracking_uri=tracking_server, cache_dir=str(tmp_path / "stacks")
    )
    results = Runner("leave_one_out", feature_table(), {"svm": {"model": "svm"}}, settings, progress=False).run()
    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("crossemo-leave_one_out")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's store, no local path
    children = client.search_runs([experiment.experiment_id], "tags.model = 'svm'")
    assert {r.info.run_id for r in children} == set(results["run_id"]) and len(children) == 3 * 2
    (parent_id,) = {r.data.tags["mlflow.parentRunId"] for r in children}
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["scenario"] == "leave_one_out"
    assert "uar/svm" in parent.data.metrics
    for run in children:
        tags = run.data.tags
        assert {tags["target"], tags["seed"], tags["scenario"]} <= {"a", "b", "c", "0", "1", "leave_one_out"}
        assert "uar" in run.data.metrics
        assert "predictions.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_model_registered_on_the_server_is_served_from_its_champion_alias(tracking_server, tmp_path):
    table = feature_table()
    trained = train_pipeline(table, SVMValence(), FeatureSettings(workers=1, cache_dir=str(tmp_path / "c")))
    done = register(trained, {"model": "svm"}, tracking_uri=tracking_server)
    version = done.version
    assert done.crowned
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["crossemo", "serve", "--port", str(port)],  # models:/crossemo-valence@champion
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ping", process, timeout=180)
        records = table[feature_names()].head(3).astype(float).to_dict("records")
        response = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=120)
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert len(answers) == 3 and {a["valence"] for a in answers} <= {"negative", "positive"}
        assert all(a["model_version"] == str(version) for a in answers)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert f"crossemo-valence v{version}" in (tmp_path / "serve.log").read_text()
