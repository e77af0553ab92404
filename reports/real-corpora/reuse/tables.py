"""The tables of ../reuse.md: the study rerun cold with fits reused across scenarios and dbn_best's
dropout masks drawn from uniform floats, against the bf16 rerun (../precision/), on the same
splits and seeds.

    python reports/real-corpora/reuse/tables.py

The results here are `python bench/study.py --skip-demo --keep DIR` at commit 095174a (DIR/project/
results/*.parquet); worker_minutes.csv sums the leaf MLflow runs' durations of both studies per
scenario and model (pretraining warm-ups included), with how many runs took their fit from another
run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.experiments.report import compare, comparison_by, identical_runs, load_results, scenario_changes

HERE = Path(__file__).parent
BEFORE = HERE.parent / "precision"
SCENARIOS = ("within", "single_source", "target_fraction", "multi_source", "leave_one_out", "transfer")
CHANGED = "dbn_best"  # the one configuration with dropout: the only one whose random stream moved


def main() -> None:
    before, after = load_results(BEFORE), load_results(HERE)
    minutes = pd.read_csv(HERE / "worker_minutes.csv")
    print("## Worker-minutes per model (both workers, leaf runs)\n")
    per_model = minutes.groupby("model")[["before_worker_minutes", "after_worker_minutes"]].sum()
    per_model.loc["all"] = per_model.sum()
    print(per_model.round(1).to_markdown())
    print("\n## Worker-minutes per scenario, and runs that took their fit from another run\n")
    columns = ["before_worker_minutes", "after_worker_minutes", "after_runs", "after_runs_reusing_a_fit"]
    per_scenario = minutes.groupby("scenario", sort=False)[columns].sum().loc[list(SCENARIOS)]
    print(per_scenario.round(1).to_markdown())
    print(f"\n## {CHANGED}: uniform dropout masks against torch's (mean UAR %, paired seeds)\n")
    compared = compare(before[before["model"] == CHANGED], after[after["model"] == CHANGED])
    print(comparison_by(compared, ["scenario", "protocol"]).round(1).to_markdown())
    print(f"\n## {CHANGED}: the change of each scenario's mean UAR (points), 95% interval over the 3 seeds\n")
    changes = scenario_changes(before, after)
    changes = changes[changes["model"] == CHANGED].sort_values("scenario", key=lambda s: s.map(SCENARIOS.index))
    print(changes.round(2).to_markdown(index=False))
    print("\n## Every other model: runs with the same UAR in both\n")
    print(identical_runs(before, after).drop(index=CHANGED)[list(SCENARIOS)].to_markdown())


if __name__ == "__main__":
    main()
