"""The registered pipeline as served, leave one corpus out on the four real corpora.

Each fold trains as `crossemo register` trains its registered (refitted) model: every labelled row of
the three other corpora, pretraining pools of those rows only. Then the left-out corpus is sent to
the pyfunc model as a client of `crossemo serve` sends it: requests of at most 256 rows, each
speaker's rows in one request, with the speaker column (speaker) or without it (lone: one
utterance at a time). Two fits per model, seed and fold serve every registry setting:

    speaker + pooled     rows standardised per speaker; lone rows on the pooled statistics, same model
    speaker + own_model  lone rows go to a second model trained on pooled-statistics rows
    train                every row on the pooled statistics (that second model alone)

Run from a project whose features/ hold the real corpora (`make real`'s features stages):

    python reports/real-corpora/served/run_served.py [MODELS] [SEEDS] [FEATURES_DIR]

MODELS defaults to dbn_best,svm (params.yaml's configurations); SEEDS to 0,1,2. It writes
served_runs.csv beside itself; tables.py turns it into served.md.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from crossemo.config import load_params
from crossemo.data.features import FeatureSettings, labelled_rows
from crossemo.data.speakers import speaker_keys
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import LoneRows, Normalization, normalization_groups, standardise_groups
from crossemo.models.catalog import model_from_params
from crossemo.serving.pyfunc import ValencePyfunc
from crossemo.serving.fitting import fit_pipeline
from crossemo.serving.requests import MAX_ROWS

HERE = Path(__file__).parent
CORPORA = ("emodb", "savee", "emovo", "urdu")


def requests(keys: np.ndarray) -> list[np.ndarray]:
    """Row positions per request: whole speakers packed in order, at most MAX_ROWS rows each."""
    batches, current = [], []
    for key in pd.unique(keys):
        rows = list(np.flatnonzero(keys == key))
        if current and len(current) + len(rows) > MAX_ROWS:
            batches.append(np.array(current))
            current = []
        current += rows
    return batches + ([np.array(current)] if current else [])


def served(pipeline, x, keys, with_speaker: bool) -> pd.DataFrame:
    """The answers a client gets, row for row."""
    model = ValencePyfunc()
    model.pipeline, model.version = pipeline, "measured"
    answers = pd.DataFrame(index=range(len(x)), columns=["valence", "standardised_on"], dtype=object)
    for rows in requests(keys):
        frame = pd.DataFrame(x[rows].astype("float64"), columns=pipeline.feature_names)
        if with_speaker:
            frame["speaker"] = keys[rows]
        answers.loc[rows, ["valence", "standardised_on"]] = model.predict(None, frame)[
            ["valence", "standardised_on"]
        ].to_numpy()
    return answers


def fold(model_name: str, seed: int, target: str, features_dir: str) -> list[dict]:
    torch.set_num_threads(1)
    params = load_params("params.yaml")
    table = pd.concat([pd.read_parquet(f"{features_dir}/{c}.parquet") for c in CORPORA], ignore_index=True)
    table, x = labelled_rows(table)
    train, test = table["corpus"].to_numpy() != target, table["corpus"].to_numpy() == target
    part = table[train].reset_index(drop=True)
    started = time.time()
    by_speaker = fit_pipeline(
        model_from_params(params, model_name, seed=seed),
        part,
        x[train],
        FeatureSettings(),
        Normalization.SPEAKER,
        LoneRows.OWN_MODEL,
    )
    seconds = time.time() - started
    pooled = by_speaker.lone_model
    variants = {
        "speaker+pooled": _with_lone(by_speaker, None),
        "speaker+own_model": by_speaker,
        "train": _alone(by_speaker, pooled),
    }
    y, keys = table["valence"].to_numpy()[test], speaker_keys(table).to_numpy()[test]
    rows = []
    for setting, pipeline in variants.items():
        for with_speaker in (True, False):
            answers = served(pipeline, x[test], keys, with_speaker)
            labels = answers["valence"].to_numpy().astype(str)
            rows.append(
                dict(
                    model=model_name,
                    setting=setting,
                    sent="speaker" if with_speaker else "lone",
                    seed=seed,
                    target=target,
                    uar=valence_scores(y, labels)["uar"],
                    negative_share=float(np.mean(labels == "negative")),
                    true_negative_share=float(np.mean(y == "negative")),
                    speaker_rows=float(np.mean(answers["standardised_on"] == "speaker")),
                    fit_seconds=seconds,
                )
            )
    # The study's way on the same fit: the left-out corpus on its own label-free statistics
    # (speakers with enough rows, else the corpus), not sent through the server.
    study_like = standardise_groups(x[test], normalization_groups(table[test], Normalization.SPEAKER))
    rows.append(
        dict(
            model=model_name,
            setting="speaker",
            sent="study",
            seed=seed,
            target=target,
            uar=valence_scores(y, by_speaker.model.predict(study_like))["uar"],
            negative_share=float(np.mean(by_speaker.model.predict(study_like) == "negative")),
            true_negative_share=float(np.mean(y == "negative")),
            speaker_rows=np.nan,
            fit_seconds=seconds,
        )
    )
    return rows


def _with_lone(pipeline, lone):
    copy = fresh_pipeline(pipeline)
    copy.lone_model = lone
    return copy


def _alone(pipeline, model):
    copy = fresh_pipeline(pipeline)
    copy.model, copy.lone_model, copy.normalization = model, None, Normalization.TRAIN
    return copy


def fresh_pipeline(pipeline):
    from dataclasses import replace

    return replace(pipeline)


def main(models="dbn_best,svm", seeds="0,1,2", features_dir="features"):
    jobs = [(m, int(s), t, features_dir) for m in models.split(",") for s in seeds.split(",") for t in CORPORA]
    results = Parallel(n_jobs=2, verbose=5)(delayed(fold)(*job) for job in jobs)
    frame = pd.DataFrame([row for rows in results for row in rows])
    out = HERE / "served_runs.csv"
    if out.exists():  # keep other models' rows: rerun only what changes
        old = pd.read_csv(out)
        frame = pd.concat([old[~old["model"].isin(frame["model"].unique())], frame], ignore_index=True)
    frame.to_csv(out, index=False)
    print(frame.groupby(["model", "setting", "sent"])["uar"].mean().round(4).to_string())


if __name__ == "__main__":
    main(*sys.argv[1:])
