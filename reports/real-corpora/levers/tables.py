"""The tables of ../levers.md, from the study's results (..) and the runs of each lever (here).

    python reports/real-corpora/levers/tables.py

Each lever's runs were made with `crossemo experiment <scenario> --out ...` in a clone of the study's
project (params.real.yaml, per-speaker normalisation), changing only what the lever names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
STUDY = HERE.parent
SCENARIOS = ("within", "leave_one_out", "transfer")


def results(folder: Path, prefix: str = "") -> pd.DataFrame:
    parts = [pd.read_parquet(p) for s in SCENARIOS if (p := folder / f"{prefix}{s}.parquet").is_file()]
    return pd.concat(parts, ignore_index=True)


def mean_uar(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean UAR (%) over seeds and folds per cell, then over a scenario's cells."""
    cells = runs.groupby(["scenario", "protocol", *by, "source", "target"])["uar"].mean().reset_index()
    return (100 * cells.groupby(["scenario", "protocol", *by])["uar"].mean()).round(1).unstack(by)


def per_cell(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    cells = runs.groupby(["scenario", "protocol", *by, "target"])["uar"].mean()
    return (100 * cells).round(1).unstack(by)


def hybrid() -> str:
    """dbn_best_svm (3 seeds) beside the study's dbn_best, sae_svm and svm."""
    study = results(STUDY)
    runs = pd.concat([study[study["model"].isin(["svm", "sae_svm", "dbn_best"])], results(HERE, "dbn_best_svm_")])
    return mean_uar(runs, ["model"]).to_markdown() + "\n\n" + per_cell(runs, ["model"]).to_markdown()


def feature_sets() -> str:
    """Each model on each feature set, seed 0 (the study's seed-0 runs are the eGeMAPS column)."""
    study = results(STUDY)
    frames = [study[(study["seed"] == 0) & study["scenario"].isin(["leave_one_out", "transfer"])].assign(
        features="eGeMAPSv02"
    )]
    for name in ("emobase", "ComParE_2016"):
        if any(HERE.glob(f"{name}_*.parquet")):
            frames.append(results(HERE, f"{name}_").assign(features=name))
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["model"].isin(set(frames[-1]["model"]))]
    return mean_uar(runs, ["model", "features"]).T.to_markdown() + "\n\n" + per_cell(
        runs, ["model", "features"]
    ).T.to_markdown()


if __name__ == "__main__":
    print("## DBN features + SVM\n\n" + hybrid() + "\n\n## Feature sets\n\n" + feature_sets())
