"""docs/tutorials/cluster.md run as written: PostgreSQL, mlflow server, a Dask cluster, the DVC
pipeline on it, tuning on a shared study, and a model registered on the server and served."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import mlflow
import optuna
import pandas as pd
import pytest
import requests
import yaml

from crossemo.data.features import feature_names

from .conftest import free_port, postgres_server, wait_for_http
from .test_pipeline import demo_project, doc_commands, project_env, run

pytestmark = pytest.mark.slow


def test_the_cluster_tutorial_works_as_written_on_the_loopback_address(tmp_path_factory, tmp_path):
    """docs/tutorials/cluster.md, both blocks as written, on this one machine: only its host names,
    ports and artifact folder are replaced (loopback, free ports, a temporary folder), in a demo
    project of its own whose pipeline has not run: the experiment run on the cluster makes it all."""
    project = demo_project(tmp_path_factory.mktemp("cluster-project"))  # the tutorial's dvc exp run makes everything

    page = "docs/tutorials/cluster.md"
    services, checkout = (
        doc_commands(page, "1. The shared services"),
        doc_commands(page, "2. The checkout that runs DVC"),
    )
    assert [c.split()[:2] for c in services] == [
        ["createdb", "-h"],
        ["createdb", "-h"],
        ["mlflow", "server"],
        ["dask", "scheduler"],
        ["dask", "worker"],
    ]
    run(project, "git", "add", "-A")  # dvc exp run starts from a commit
    git_user = ("-c", "user.name=crossemo", "-c", "user.email=ci@localhost")
    run(project, "git", *git_user, "commit", "-q", "--allow-empty", "-m", "before the cluster")
    kept = (project / "params.yaml").read_text()
    params = yaml.safe_load(kept)  # a short budget: the SVM alone in the experiments, the tuning tutorial's trials
    params["experiments"].update(models=["svm"])
    params["experiments"]["within"]["within_protocols"] = ["random"]
    params["tuning"].update(corpora=["savee", "emovo"], n_trials=2, finetune_max_epochs=3)
    params["tuning"]["space"].update(layers=[1, 1], units=[8, 16], pretrain_epochs=[1, 2], batch_size=[64])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env, background = project_env(), []
    with postgres_server() as database:
        ports = {"5432": database.rsplit(":", 1)[1], "5000": str(free_port()), "8786": str(free_port())}

        def here(command: str) -> str:
            command = re.sub(r"\b(db|sched|mlflow)\.lab\b", "127.0.0.1", command)
            command = command.replace("--host 0.0.0.0", "--host 127.0.0.1")
            command = command.replace("/srv/mlflow-artifacts", str(tmp_path / "artifacts"))
            return re.sub(r"(?<=[: ])(5432|5000|8786)\b", lambda m: ports[m.group(1)], command)

        def start(command: str) -> subprocess.Popen:
            log = (tmp_path / f"{len(background)}.log").open("w")
            process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=project, env=env, stdout=log, stderr=log)
            background.append(process)
            return process

        def wait_for_port(port: str, timeout: float = 120) -> None:
            deadline = time.time() + timeout
            while socket.socket().connect_ex(("127.0.0.1", int(port))) != 0:
                assert time.time() < deadline, f"nothing listens on {port}"
                time.sleep(0.5)

        tracking = f"http://127.0.0.1:{ports['5000']}"
        try:
            for command in map(here, services):
                if command.startswith("createdb"):
                    run(project, "bash", "-c", command)
                else:
                    start(command)
            wait_for_http(f"{tracking}/health", background[0], timeout=180)
            wait_for_port(ports["8786"])
            for command in map(here, checkout):
                if command.startswith("export "):
                    name, value = command.removeprefix("export ").split("=", 1)
                    env[name] = value
                elif command == "crossemo serve":
                    port = free_port()
                    server = start(f"{command} --port {port}")
                    wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=180)
                    row = pd.read_parquet(project / "features/savee.parquet")[feature_names()].head(1).astype(float)
                    answer = requests.post(
                        f"http://127.0.0.1:{port}/invocations",
                        json={"dataframe_records": row.to_dict("records")},
                        timeout=60,
                    )
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["predictions"][0]["model_version"] == "1"
                else:
                    done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True)
                    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
            client = mlflow.MlflowClient(tracking)
            experiment = client.get_experiment_by_name("crossemo-leave_one_out")
            parents = client.search_runs([experiment.experiment_id], "tags.scenario = 'leave_one_out'")
            executors = {
                r.data.params["experiments.executor"] for r in parents if "experiments.executor" in r.data.params
            }
            assert executors == {"dask"}  # every scenario's parent run on the server ran on the cluster
            assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's store, no local path
            children = client.search_runs([experiment.experiment_id], "tags.model = 'svm'")
            assert {r.data.tags["seed"] for r in children} == {"0", "1", "2", "3", "4"}  # the five seeds, on the server
            for child in children[:3]:  # each fit's run: its parent, tags, metrics and artifacts through the server
                assert child.data.tags["mlflow.parentRunId"] in {r.info.run_id for r in parents}
                assert child.data.tags["scenario"] == "leave_one_out" and child.data.tags["target"] in params["corpora"]
                assert "uar" in child.data.metrics
                assert "predictions.csv" in {a.path for a in client.list_artifacts(child.info.run_id)}
            study = optuna.load_study(study_name=params["tuning"]["study_name"], storage=f"{database}/optuna")
            assert len([t for t in study.trials if t.state.is_finished()]) >= 2
            assert client.get_model_version_by_alias("crossemo-valence", "champion").version == "1"
        finally:
            for process in reversed(background):
                process.terminate()
                process.wait(timeout=30)
