"""served.md's tables from served_runs.csv (run_served.py) and the study's leave-one-out runs.

    python reports/real-corpora/served/tables.py
"""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
STUDY = HERE.parent / "leave_one_out.parquet"
SENT = {"study": "study (not served)", "speaker": "served, speaker column", "lone": "served, one utterance at a time"}


def percent(frame: pd.DataFrame) -> pd.DataFrame:
    return (100 * frame).round(1)


def main() -> None:
    runs = pd.read_csv(HERE / "served_runs.csv")
    study = pd.read_parquet(STUDY)
    study = study[study["model"].isin(runs["model"].unique())]
    cells = runs.groupby(["model", "setting", "sent", "target"])[["uar", "negative_share"]].mean().reset_index()
    uar = cells.pivot_table(index=["model", "setting", "sent"], columns="target", values="uar")
    uar["mean"] = uar.mean(axis=1)
    reference = study.groupby(["model", "target"])["uar"].mean().unstack()
    reference["mean"] = reference.mean(axis=1)
    gap = uar["mean"] - reference["mean"].reindex(uar.index.get_level_values("model")).to_numpy()
    uar["vs study"] = gap
    shares = cells.pivot_table(index=["model", "setting", "sent"], columns="target", values="negative_share")
    truth = runs.groupby("target")["true_negative_share"].first()
    lines = [
        "| model | registry setting | scored | " + " | ".join(uar.columns) + " |",
        "|---|---|---|" + "---|" * len(uar.columns),
    ]
    for (model, setting, sent), row in percent(uar).iterrows():
        lines.append(f"| {model} | {setting} | {SENT[sent]} | " + " | ".join(f"{v:+.1f}" if c == "vs study" else f"{v:.1f}" for c, v in row.items()) + " |")
    lines += ["", "The study's leave-one-out UAR for the same models (3 seeds, reports/real-corpora/leave_one_out.parquet):", ""]
    lines += ["| model | " + " | ".join(reference.columns) + " |", "|---|" + "---|" * len(reference.columns)]
    for model, row in percent(reference).iterrows():
        lines.append(f"| {model} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    lines += ["", "Share of 'negative' answers (truth: " + ", ".join(f"{t} {100 * v:.0f}%" for t, v in truth.items()) + "):", ""]
    lines += ["| model | registry setting | scored | " + " | ".join(shares.columns) + " |", "|---|---|---|" + "---|" * len(shares.columns)]
    for (model, setting, sent), row in percent(shares).iterrows():
        flag = lambda v: f"**{v:.1f}**" if v > 75 or v < 25 else f"{v:.1f}"
        lines.append(f"| {model} | {setting} | {SENT[sent]} | " + " | ".join(flag(v) for v in row) + " |")
    (HERE / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
