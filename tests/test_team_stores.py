"""Optuna studies on a real PostgreSQL server, shared by several tuning workers, one of them killed.
The server runs on the loopback address from a temporary folder and is stopped afterwards. `mlflow
server` on PostgreSQL (experiments, registry, the served model) is exercised by the cluster
tutorial's test in test_pipeline.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import optuna
import pytest

from crossemo.experiments.tuning import prepare, tune

from .conftest import postgres_server
from .test_tuning import check_two_workers_share_one_study, data
from .test_tuning import settings as tune_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    with postgres_server(("mlflow", "optuna")) as url:
        yield url


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
