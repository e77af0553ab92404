"""Reading the registry: a version by URI, its pipeline, its recorded training speakers and data,
and the first lines of its model card."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from crossemo.errors import UserError

SYNTHETIC = "synthetic-demo"  # the training_data tag of a model trained on `crossemo demo generate`'s corpora
SPEAKERS_ARTIFACT = "training_speakers.json"  # {corpus/speaker: utterances} a registered model trained on
SYNTHETIC_WARNING = (
    "WARNING: trained on the SYNTHETIC demo corpora, not speech; its answers on real recordings mean "
    "nothing. Register a model trained on real corpora (README: Real corpora)."
)


def is_synthetic(version) -> bool:
    """Whether a registered version was trained on the synthetic demo corpora."""
    return version.tags.get("training_data") == SYNTHETIC


def resolve_version(reference: str, client: MlflowClient | None = None):
    """The registry's ModelVersion for `models:/name@alias` or `models:/name/version`, else None."""
    client = client or MlflowClient()
    reference = reference.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, number = reference.rsplit("/", 1)
        return client.get_model_version(name, number)
    except (ValueError, mlflow.exceptions.MlflowException):
        return None


def load_registered(model_uri: str):
    """The pyfunc model at `model_uri`, told its registry version (its answers report it)."""
    found = resolve_version(model_uri)
    config = {"model_version": str(found.version)} if found is not None else None
    try:
        return mlflow.pyfunc.load_model(model_uri, model_config=config)
    except mlflow.exceptions.MlflowException as error:
        raise UserError(
            f"{model_uri}: {error.message.splitlines()[0]} (register one with `crossemo register`)"
        ) from None


def registered_pipeline(model_uri: str):
    """The ValencePipeline inside the registered model at `model_uri`."""
    return load_registered(model_uri).unwrap_python_model().pipeline


def training_speakers(client: MlflowClient, run_id: str) -> dict[str, int] | None:
    """The {corpus/speaker: utterances} a registered version trained on, None if it recorded none."""
    try:
        path = client.download_artifacts(run_id, SPEAKERS_ARTIFACT, tempfile.mkdtemp())
    except (mlflow.exceptions.MlflowException, OSError):
        return None
    return json.loads(Path(path).read_text())


def model_summary(model_uri: str, lines: int = 4) -> str:
    """The first lines of the version's model card, for whoever serves or uses it; a plain warning
    when it was trained on the synthetic demo corpora (also for versions registered without a card)."""
    version = resolve_version(model_uri)
    if version is None:
        return f"{model_uri}: no registry record of its training data"
    head = [line for line in (version.description or "").splitlines() if line.strip()][:lines]
    if not head:
        corpora = version.tags.get("corpora") or "unrecorded corpora"
        head = [f"{version.name} v{version.version}, trained on {corpora}"]
    if is_synthetic(version) and not any("SYNTHETIC" in line for line in head):
        head.append(SYNTHETIC_WARNING)
    return "\n".join(head)
