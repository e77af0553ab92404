"""`crossemo evaluate`: how does a trained model do on my corpora? Accuracy, UAR, F1 and the
confusion per corpus, for the registered champion, any registered version, or an experiment run's model.

A corpus is any entry of params.yaml's corpora: (every loader, CSV manifests included); its table
and features are made as the pipeline makes them (the per-file feature cache included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from crossemo.data.features import FeatureSettings, extract_table, labelled_rows
from crossemo.errors import ConfigError, UserError
from crossemo.experiments.fit_reuse import stored_model
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalization_groups, standardise_groups
from crossemo.serving.adapting import TargetRows, adapted_configuration, registration
from crossemo.serving.batch_prediction import output_format
from crossemo.serving.pipeline import ValencePipeline
from crossemo.serving.registry import CHAMPION, MODEL_NAME
from crossemo.serving.versions import registered_pipeline, resolve_version


@dataclass(frozen=True)
class EvaluatedModel:
    """What a reference names: the fitted model and how its inputs are standardised."""

    name: str
    predict: object  # (features, table) -> labels
    features: FeatureSettings | None  # the model's own extraction settings, when it records them
    uri: str | None = None  # a registered version's models:/ URI (None: an experiment run's model)
    pipeline: ValencePipeline | None = None  # a registered version's pipeline, as loaded


def resolve(reference: str, normalization: Normalization | None = None, as_served: bool = False) -> EvaluatedModel:
    """`champion`, a `models:/name@alias` or `models:/name/version` URI, or an experiment run's id
    (its model.joblib; logged with experiments.log_models). `normalization` overrides the model's own;
    `as_served` scores a registered model one utterance at a time, as a client sending no speaker is served."""
    if reference == CHAMPION:
        reference = f"models:/{MODEL_NAME}@{CHAMPION}"
    if reference.startswith("models:/"):
        return _registered(reference, normalization, as_served)
    if as_served:
        raise ConfigError(f"--as-served scores a registered model as it is served; {reference} is an experiment run")
    return _experiment_run(reference.removeprefix("runs:/").split("/")[0], normalization)


def _registered(uri: str, normalization: Normalization | None, as_served: bool) -> EvaluatedModel:
    pipeline: ValencePipeline = registered_pipeline(uri)
    if as_served:
        if normalization is not None:
            raise ConfigError("--as-served standardises as the server does; leave out --normalization")
        lone = f"as served: one utterance at a time, lone rows {pipeline.lone_rows}"
        return EvaluatedModel(
            f"{uri} ({lone})",
            lambda x, table: pipeline.score(x)["valence"].to_numpy(),
            pipeline.features,
            uri,
            pipeline,
        )
    method = normalization or pipeline.normalization
    name = f"{uri} ({method} normalisation of each corpus' own statistics)"
    return EvaluatedModel(name, _corpus_predictor(pipeline, method), pipeline.features, uri, pipeline)


def _corpus_predictor(pipeline: ValencePipeline, method: Normalization):
    """(features, table) -> the pipeline's labels, each corpus (or speaker) on its own statistics."""

    def predict(x: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        return pipeline.model.predict(pipeline.standardise(x, normalization_groups(table, method)))

    return predict


def _experiment_run(run_id: str, normalization: Normalization | None) -> EvaluatedModel:
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
        model = stored_model(run)
    except (mlflow.exceptions.MlflowException, OSError):
        raise UserError(
            f"{run_id}: no run with a model.joblib artifact (give `champion`, a models:/ URI, or the id of an "
            "experiment run logged with experiments.log_models: true)"
        ) from None
    parent = run.data.tags.get("mlflow.parentRunId")
    trained = client.get_run(parent).data.params.get("experiments.normalization") if parent else None
    method = normalization or Normalization(trained or Normalization.CORPUS)
    if method is Normalization.TRAIN:
        raise ConfigError(
            f"run {run_id} was trained on rows standardised with its training set's statistics, which the run "
            "does not keep: evaluate it with --normalization corpus or speaker, or register the model"
        )

    def predict(x: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        return model.predict(standardise_groups(x, normalization_groups(table, method)))

    name = f"run {run_id} ({run.data.tags.get('model', 'model')}, {method} normalisation)"
    return EvaluatedModel(name, predict, None)


def corpus_features(config, settings: FeatureSettings, progress: bool = True) -> pd.DataFrame:
    """One corpus' labelled feature table, as the table and features stages make it."""
    table = config.load()
    features, _ = extract_table(table, config.audio_root, settings, progress=config.name if progress else None)
    return features


def evaluate_corpora(model: EvaluatedModel, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per corpus: size, accuracy, UAR, macro F1, majority rate and the confusion counts."""
    return pd.DataFrame([_corpus_scores(name, table, model.predict) for name, table in tables.items()])


def evaluate_adapted(
    model: EvaluatedModel, tables: dict[str, pd.DataFrame], features_dir: str, method: str | None = None
) -> pd.DataFrame:
    """`evaluate_corpora` for a registered version (`resolve`'s) adapted to each corpus in turn
    (--adapt): its configuration refitted on every labelled row of its training corpora, with the
    corpus' rows, label-free, as the target; standardised and scored as the version is."""
    from crossemo.experiments.runner import load_features
    from crossemo.models.catalog import model_from_config
    from crossemo.serving.fitting import fit_pipeline

    version = resolve_version(model.uri) if model.uri else None
    if version is None:
        raise UserError(
            f"--adapt refits a registered version; {model.name} is not one (give champion or a models:/ URI)"
        )
    recorded, pipeline = registration(version), model.pipeline
    name = recorded["model"]
    config = adapted_configuration(recorded["config"], name, method)
    training, x = labelled_rows(load_features(recorded["corpora"].split(","), features_dir))
    rows = []
    for corpus, table in tables.items():
        fresh = model_from_config({name: config}, name, seed=int(recorded["seed"]))
        target = TargetRows.from_tables({corpus: table})
        fitted = fit_pipeline(fresh, training, x, pipeline.features, pipeline.normalization, pipeline.lone_rows, target)
        rows.append(_corpus_scores(corpus, table, _corpus_predictor(fitted, fitted.normalization)))
    return pd.DataFrame(rows)


def _corpus_scores(name: str, table: pd.DataFrame, predict) -> dict:
    table, x = labelled_rows(table)
    if table.empty:
        raise UserError(f"{name}: no utterance with a valence label (check its valence mapping in params.yaml)")
    scores = valence_scores(table["valence"], predict(x, table))
    (nn, np_), (pn, pp) = scores.pop("confusion")
    return {
        "corpus": name,
        "n": scores.pop("n_test"),
        **scores,
        "neg->neg": nn,
        "neg->pos": np_,
        "pos->neg": pn,
        "pos->pos": pp,
    }


def as_markdown(scores: pd.DataFrame) -> str:
    shown = scores.copy()
    for column in ("accuracy", "uar", "macro_f1", "majority_rate"):
        shown[column] = [f"{100 * v:.1f}" for v in scores[column]]
    header = "| " + " | ".join(shown.columns) + " |"
    lines = [header, "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def write_scores(scores: pd.DataFrame, path: str | Path) -> None:
    if output_format(path) == "json":
        Path(path).write_text(json.dumps(scores.to_dict("records"), indent=1))
    else:
        scores.to_csv(path, index=False)
