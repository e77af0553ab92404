"""MLflow set-up: the sqlite store, one experiment per scenario, and the tags every run carries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
import yaml

TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACTS = Path("mlruns/artifacts")


def absolute_uri(tracking_uri: str) -> str:
    """A sqlite URI with an absolute path: worker processes need not share the caller's directory."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(tracking_uri.removeprefix("sqlite:///")).resolve())
    return tracking_uri


def default_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a team's `mlflow server`, or this project's store for experiments
    that DVC runs in a temporary copy), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or TRACKING_URI


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the given store, else the default one (the plain ./mlruns file store is
    refused by MLflow 3)."""
    # Absolute: MLflow caches one store per URI string, so a relative sqlite path would keep pointing
    # at the file of the folder it was first opened in; and worker processes need not share the folder.
    tracking_uri = absolute_uri(tracking_uri or default_uri())
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    return tracking_uri


#: MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and may land a
#: model-training experiment on the GenAI overview (traces, tokens, "no data") instead of the runs table.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment(name: str, artifacts: Path = ARTIFACTS) -> str:
    """The experiment's id, creating it marked as a model-training experiment. With the project's
    sqlite store its artifacts go under mlruns/artifacts/<name>; a tracking server keeps its own
    artifact store (every worker of a cluster reaches it, and no client's disk)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
            mlflow.MlflowClient().set_experiment_tag(found.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
        return found.experiment_id
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        location = (artifacts / name).resolve()
        location.mkdir(parents=True, exist_ok=True)
    try:
        return mlflow.create_experiment(
            name, artifact_location=location.as_uri() if location else None, tags=EXPERIMENT_KIND
        )
    except mlflow.exceptions.MlflowException:  # created meanwhile by another process (two cluster workers)
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


#: What `dvc exp run` tells its stages about the experiment (DVC sets these in the environment), as
#: MLflow tags: a row of `dvc exp show` finds its runs with `tags.dvc_experiment = '<name>'`.
DVC_ENVIRONMENT_TAGS = {
    "DVC_EXP_NAME": "dvc_experiment",
    "DVC_EXP_BASELINE_REV": "dvc_baseline_rev",
    "DVC_STAGE": "dvc_stage",
}


def dvc_tags() -> dict[str, str]:
    return {tag: os.environ[name] for name, tag in DVC_ENVIRONMENT_TAGS.items() if os.environ.get(name)}


def provenance_tags(corpora: list[str]) -> dict[str, str]:
    """git commit, the data.dvc hash, the corpora used and, under `dvc exp run`, the DVC experiment:
    what a run was made from."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    data = Path("data.dvc")
    data_hash = "unknown"
    if data.is_file():
        outs = (yaml.safe_load(data.read_text()) or {}).get("outs") or [{}]
        data_hash = str(outs[0].get("md5", "unknown"))
    return {
        "git_commit": commit + ("+dirty" if dirty else ""),
        "data_dvc_md5": data_hash,
        "corpora": ",".join(sorted(corpora)),
        **dvc_tags(),
    }


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: pretrain.learning_rate and finetune.learning_rate stay distinct."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
