"""The tables of ../precision.md: the study rerun at bf16-mixed (dbn_paper, mlp_paper) against the
study itself (every model at 32-true), on the same splits and seeds.

    python reports/real-corpora/precision/tables.py

The rerun's results are here (`python bench/study.py --skip-demo --keep DIR` at the commit that
made dbn_paper and mlp_paper bf16-mixed, its DIR/project/results/*.parquet copied); the study's
are in the folder above."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.metrics import mean_ci
from crossemo.report import KEYS, compare, comparison_by

HERE = Path(__file__).parent
STUDY = HERE.parent
SCENARIOS = ("within", "single_source", "target_fraction", "multi_source", "leave_one_out", "transfer")
CHANGED = ("dbn_paper", "mlp_paper")


def pairs() -> pd.DataFrame:
    """Every configuration both runs share, with its paired-seed change (crossemo compare)."""
    frames = [
        compare(pd.read_parquet(STUDY / f"{s}.parquet"), pd.read_parquet(HERE / f"{s}.parquet")) for s in SCENARIOS
    ]
    return pd.concat(frames, ignore_index=True)


def summary(compared: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and model: mean UAR before and after, the mean change, and how many cells' 95%
    intervals hold 0 (a change no larger than another seed would make), lie above or below it."""
    return comparison_by(compared, ["scenario", "model"]).round(2)


def scenario_changes() -> pd.DataFrame:
    """Per scenario and model, the change of the scenario's mean UAR with its 95% interval over the
    seeds: each seed's mean over the cells of its own change (seed s of both runs shares its splits
    and, for dbn_paper, its pretraining seed). Cells of one seed share a stack, so this, not a count of
    cells, is the test of whether a scenario moved."""
    rows = []
    for scenario in SCENARIOS:
        per_seed = [
            pd.read_parquet(folder / f"{scenario}.parquet").groupby([*KEYS, "seed"], dropna=False)["uar"].mean()
            for folder in (STUDY, HERE)
        ]
        paired = pd.concat(per_seed, axis=1, keys=["before", "after"], join="inner").reset_index()
        paired = paired[paired["model"].isin(CHANGED)]
        seeds = paired.assign(change=paired["after"] - paired["before"]).groupby(["model", "seed"])["change"].mean()
        for model, changes in seeds.groupby(level="model"):
            mean, _, low, high = mean_ci(changes.to_numpy())
            rows.append(
                {"scenario": scenario, "model": model, "change": 100 * mean, "ci_low": 100 * low, "ci_high": 100 * high}
            )
    return pd.DataFrame(rows).round(2)


def unchanged_models() -> pd.DataFrame:
    """The models left at 32-true: per scenario, how many of their runs gave the very same UAR in both."""
    keys = ["scenario", "protocol", "model", "source", "target", "fraction", "seed", "fold"]
    table = {}
    for scenario in SCENARIOS:
        before, after = (pd.read_parquet(folder / f"{scenario}.parquet") for folder in (STUDY, HERE))
        both = before.merge(after, on=keys, suffixes=("_before", "_after"))
        for model, runs in both[~both["model"].isin(CHANGED)].groupby("model"):
            same = int(((runs["uar_before"] - runs["uar_after"]).abs() < 1e-12).sum())
            table.setdefault(model, {})[scenario] = f"{same} of {len(runs)}"
    return pd.DataFrame(table).T[list(SCENARIOS)]


def main() -> None:
    compared = pairs()
    print("## bf16-mixed against 32-true, per scenario (mean UAR %, cells: configurations x targets)\n")
    print(summary(compared[compared["model"].isin(CHANGED)]).to_markdown())
    print("\n## The change of each scenario's mean UAR (points), 95% interval over the 3 seeds\n")
    print(scenario_changes().to_markdown(index=False))
    print("\n## Models left at 32-true: runs with the same UAR in both\n")
    print(unchanged_models().to_markdown())


if __name__ == "__main__":
    main()
