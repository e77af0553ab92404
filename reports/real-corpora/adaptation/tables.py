"""The adaptation study's tables (tables.md) from run_study.py's results beside this script:

    python reports/real-corpora/adaptation/tables.py

Means over seeds with 95% intervals (Student's t over the 3 seeds; a seed's scenario mean is the mean
of its cells), every cell with its interval, and paired differences (`crossemo compare --pair`'s
`paired_models`): each method against none, and each adapted DBN against the SVM with the same
adaptation, per scenario over seeds and cell by cell.
"""

from pathlib import Path

import pandas as pd

from crossemo.experiments.metrics import mean_ci
from crossemo.experiments.report import compare, comparison_by, paired_models, scenario_changes

HERE = Path(__file__).parent
BASES = {"svm": ("coral", "self_training"), "dbn_best": ("coral", "dann", "self_training"),
         "svm_cv": ("coral", "self_training"), "sae_svm": ("coral", "self_training"),
         "mlp_paper": ("coral", "dann", "self_training")}
ORDER = [name for base, methods in BASES.items() for name in (base, *(f"{base}_{m}" for m in methods))]
METHOD_VS_NONE = [(f"{base}_{m}", base) for base, methods in BASES.items() for m in methods]
DBN_VS_SVM = [("dbn_best", "svm"), ("dbn_best_coral", "svm_coral"), ("dbn_best_self_training", "svm_self_training"),
              ("dbn_best_dann", "svm"), ("dbn_best_dann", "svm_coral")]
NAMES = {"leave_one_out": "leave one out", "transfer": "transfer, audio used"}


def results() -> pd.DataFrame:
    frames = [pd.read_parquet(HERE / f"{s}.parquet") for s in NAMES]
    return pd.concat(frames, ignore_index=True)


def present(frame: pd.DataFrame, names):
    """The models (or pairs of models) this study's results hold, in ORDER."""
    models = set(frame["model"])
    return [n for n in names if (set(n) if isinstance(n, tuple) else {n}) <= models]


def interval(values) -> str:
    mean, _, low, high = mean_ci(values)
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def means(frame: pd.DataFrame) -> list[str]:
    """Per model: each scenario's mean over its cells and both together (6 cells), with intervals over seeds."""
    lines = ["| model | leave one out (4 cells) | transfer, audio used (2 cells) | all 6 cells |", "|---|---|---|---|"]
    for model in present(frame, ORDER):
        rows = frame[frame["model"] == model]
        cells = [interval(rows[rows["scenario"] == s].groupby("seed")["uar"].mean()) for s in NAMES]
        lines.append(f"| {model} | " + " | ".join([*cells, interval(rows.groupby("seed")["uar"].mean())]) + " |")
    return lines


def cells(frame: pd.DataFrame) -> list[str]:
    targets = [(s, t) for s in NAMES for t in sorted(frame.loc[frame["scenario"] == s, "target"].unique())]
    lines = ["| model | " + " | ".join(f"{t} ({'loo' if s == 'leave_one_out' else 'transfer'})" for s, t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    widest = 0.0
    for model in present(frame, ORDER):
        row = []
        for scenario, target in targets:
            uars = frame[(frame["model"] == model) & (frame["scenario"] == scenario) & (frame["target"] == target)]
            mean, _, low, high = mean_ci(uars.groupby("seed")["uar"].mean())
            if scenario == "leave_one_out" and model.startswith("dbn"):
                widest = max(widest, (high - low) / 2)
            row.append(f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]")
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    lines += ["", f"Widest 95% half-width of a DBN's leave-one-out cell: {100 * widest:.1f} points."]
    return lines


def paired(frame: pd.DataFrame, pairs: list[tuple[str, str]]) -> list[str]:
    pairs = present(frame, pairs)
    before, after = paired_models(frame, frame, pairs)
    changes = scenario_changes(before, after)
    cells_moved = comparison_by(compare(before, after), ["model", "scenario"])
    lines = ["| comparison | scenario | change of the mean (points) | 95% interval over seeds | cells above 0 / holding 0 / below 0 |",
             "|---|---|---|---|---|"]
    for label in [f"{a} vs {b}" for a, b in pairs]:
        for scenario in NAMES:
            change = changes[(changes["model"] == label) & (changes["scenario"] == scenario)].iloc[0]
            moved = cells_moved.loc[(label, scenario)]
            lines.append(
                f"| {label} | {NAMES[scenario]} | {change['change']:+.1f} | [{change['ci_low']:+.1f}, {change['ci_high']:+.1f}] | "
                f"{int(moved['above_0'])} / {int(moved['interval_holds_0'])} / {int(moved['below_0'])} |"
            )
    return lines


NOTE = (
    "svm and svm_cv have no seed (every seed's fit is the same), so their intervals have no width; a "
    "comparison of two of them is exact, and a DBN's interval against one is the DBN's own spread over seeds."
)


def main() -> None:
    frame = results()
    parts = [NOTE, "",
        "## Mean UAR (%), 95% intervals over seeds 0-2", *means(frame), "",
        "## Every cell (%), 95% intervals over seeds", *cells(frame), "",
        "## Each method against none (paired: same splits and seeds)", *paired(frame, METHOD_VS_NONE), "",
        "## The DBN against the SVM with the same adaptation (paired)", *paired(frame, DBN_VS_SVM),
    ]
    (HERE / "tables.md").write_text("\n".join(parts) + "\n")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
