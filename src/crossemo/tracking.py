"""MLflow set-up: the sqlite store, one experiment per scenario, and the tags every run carries."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import mlflow
import yaml

TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACTS = Path("mlruns/artifacts")


def configure(tracking_uri: str = TRACKING_URI) -> str:
    """Point MLflow at the project's store (the plain ./mlruns file store is refused by MLflow 3)."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    return tracking_uri


def experiment(name: str, artifacts: Path = ARTIFACTS) -> str:
    """The experiment's id, creating it with its artifacts under mlruns/artifacts/<name>."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (artifacts / name).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=location.as_uri())


def provenance_tags(corpora: list[str]) -> dict[str, str]:
    """git commit, the data.dvc hash and the corpora used: what a run was made from."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    data = Path("data.dvc")
    data_hash = "unknown"
    if data.is_file():
        outs = (yaml.safe_load(data.read_text()) or {}).get("outs") or [{}]
        data_hash = str(outs[0].get("md5", "unknown"))
    return {"git_commit": commit + ("+dirty" if dirty else ""), "data_dvc_md5": data_hash,
            "corpora": ",".join(sorted(corpora))}


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


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]
