"""The tables of ../levers.md, from the study's results (../study-8e2523c) and the runs of each lever (here).

    python reports/real-corpora/levers/tables.py

Each lever's runs were made with `crossemo experiment <scenario> --out ...` in a clone of the study's
project (params.real.yaml, per-speaker normalisation), changing only what the lever names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.experiments.metrics import mean_ci
from crossemo.experiments.report import compare, comparison_by

HERE = Path(__file__).parent
STUDY = HERE.parent / "study-8e2523c"  # the study these were compared with
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


def svm_cv_grid() -> str:
    """svm_cv with gamma in multiples of sklearn's "scale" (3 seeds) beside the study's absolute grid."""
    study = results(STUDY)
    runs = pd.concat(
        [
            study[study["model"] == "svm_cv"].assign(grid="absolute (study)"),
            results(HERE, "svm_cv_scaled_").assign(grid="x scale"),
        ]
    )
    return mean_uar(runs, ["grid"]).to_markdown()


def feature_sets() -> str:
    """Each model on each feature set, seed 0. eGeMAPS: the study's seed-0 runs (svm_cv: its run with
    the scaled grid); the other sets: their runs here, svm_cv rerun with the scaled grid."""
    study = results(STUDY)
    scaled = results(HERE, "svm_cv_scaled_")
    frames = [
        pd.concat([study[study["model"] != "svm_cv"], scaled]).assign(features="eGeMAPSv02"),
        pd.concat([results(HERE, "ComParE_2016_").query("model != 'svm_cv'"), results(HERE, "ComParE_svm_cv_")]).assign(
            features="ComParE_2016"
        ),
    ]
    if any(HERE.glob("emobase_*.parquet")):
        frames.append(results(HERE, "emobase_").assign(features="emobase"))
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[(runs["seed"] == 0) & runs["scenario"].isin(["leave_one_out", "transfer"])]
    runs = runs[runs["model"].isin(["svm", "svm_cv", "sae_svm", "dbn_best"])]
    return (
        mean_uar(runs, ["model", "features"]).T.to_markdown()
        + "\n\n"
        + per_cell(runs, ["model", "features"]).T.to_markdown()
    )


ALL_SCENARIOS = ("within", "single_source", "target_fraction", "multi_source", "leave_one_out", "transfer")


def fixed_epochs() -> str:
    """dbn_best fine-tuned on every training row for 60 epochs (finetune.validation_fraction: 0), 3
    seeds, every scenario, beside the study's dbn_best (early stopping) and svm; then crossemo
    compare's paired-seed change per scenario (mean over its cells, and how many cells moved)."""
    study = pd.concat([pd.read_parquet(STUDY / f"{s}.parquet") for s in ALL_SCENARIOS], ignore_index=True)
    fixed = pd.concat([pd.read_parquet(HERE / f"dbn_best_fixed60_{s}.parquet") for s in ALL_SCENARIOS])
    early = study[study["model"] == "dbn_best"]
    runs = pd.concat(
        [
            early.assign(model="dbn_best (early stopping)"),
            fixed.assign(model="dbn_best, 60 epochs, every row"),
            study[study["model"] == "svm"],
        ]
    )
    changes = comparison_by(compare(early, fixed), ["scenario", "protocol"])
    changes = changes[["cells", "change", "interval_holds_0", "above_0", "below_0"]].round(1)
    return mean_uar(runs, ["model"]).to_markdown() + "\n\n" + changes.to_markdown()


def fixed_epochs_spread() -> str:
    """The 95% interval's half-width (points) over the 3 seeds, per within-corpus and leave-one-out
    cell: dbn_best early-stopped (the study), dbn_best on every row for 60 epochs, the study's svm."""
    rows = []
    for scenario in ("within", "leave_one_out"):
        study = pd.read_parquet(STUDY / f"{scenario}.parquet")
        fixed = pd.read_parquet(HERE / f"dbn_best_fixed60_{scenario}.parquet")
        for name, runs in (
            ("early stopping", study[study["model"] == "dbn_best"]),
            ("60 epochs", fixed),
            ("svm", study[study["model"] == "svm"]),
        ):
            per_seed = runs.groupby(["protocol", "target", "seed"])["uar"].mean()
            for (protocol, target), seeds in per_seed.groupby(level=[0, 1]):
                _, _, low, high = mean_ci(seeds.to_numpy())
                rows.append(dict(model=name, protocol=protocol, target=target, half_width=100 * (high - low) / 2))
    table = pd.DataFrame(rows).pivot_table(index=["protocol", "target"], columns="model", values="half_width")
    return table[["early stopping", "60 epochs", "svm"]].round(1).to_markdown()


if __name__ == "__main__":
    print("## DBN features + SVM\n\n" + hybrid())
    print("\n## svm_cv's gamma grid\n\n" + svm_cv_grid())
    print("\n## Feature sets\n\n" + feature_sets())
    print("\n## Fine-tuning without early stopping\n\n" + fixed_epochs())
    print("\n95% half-widths over seeds\n\n" + fixed_epochs_spread())
