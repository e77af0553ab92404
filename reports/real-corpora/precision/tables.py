"""The tables of ../precision.md: the study rerun at bf16-mixed (dbn_paper, mlp_paper) against the
study itself (every model at 32-true), on the same splits and seeds.

    python reports/real-corpora/precision/tables.py

The rerun's results are here (`python bench/study.py --skip-demo --keep DIR` at the commit that
made dbn_paper and mlp_paper bf16-mixed, its DIR/project/results/*.parquet copied); the study's
are in ../study-8e2523c/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.experiments.report import compare, comparison_by, identical_runs, load_results, scenario_changes

HERE = Path(__file__).parent
STUDY = HERE.parent / "study-8e2523c"  # the study these were compared with
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


def in_scenario_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("scenario", key=lambda s: s.map(SCENARIOS.index), kind="stable")


def main() -> None:
    compared = pairs()
    before, after = load_results(STUDY), load_results(HERE)
    print("## bf16-mixed against 32-true, per scenario (mean UAR %, cells: configurations x targets)\n")
    print(summary(compared[compared["model"].isin(CHANGED)]).to_markdown())
    print("\n## The change of each scenario's mean UAR (points), 95% interval over the 3 seeds\n")
    changes = in_scenario_order(scenario_changes(before, after))
    print(changes[changes["model"].isin(CHANGED)].round(2).to_markdown(index=False))
    print("\n## Models left at 32-true: runs with the same UAR in both\n")
    same = identical_runs(before, after)
    print(same.drop(index=list(CHANGED))[list(SCENARIOS)].to_markdown())


if __name__ == "__main__":
    main()
