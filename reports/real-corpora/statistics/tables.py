"""The tables of ../statistics.md: the transfer scenario run three ways on the real corpora, the
`statistics` way (unseen's fits, each test corpus standardised on its own label-free statistics, as
`crossemo evaluate` standardises a corpus) beside `unseen` and `used`.

    python reports/real-corpora/statistics/tables.py

transfer.parquet here is `python -m crossemo.stages.experiment transfer` in the project that
`bench/study.py --skip-demo --keep DIR` left at commit 095174a (features, stacks and params.real.yaml
of that study), run with this commit's code and `target_audio: [unseen, statistics, used]`; its
unseen and used runs are checked against that study's own (../reuse/). leave_one_out_trainpool.parquet
is `python -m crossemo.stages.experiment leave_one_out` in the same project for dbn_best_trainpool,
dbn_best with `pretrain_data: train` (its stack pretrained on the training rows, the left-out
corpus' audio in no pool)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossemo.experiments.metrics import mean_ci
from crossemo.experiments.report import identical_runs

HERE = Path(__file__).parent
STUDY = HERE.parent / "reuse"
WAYS = ["audio_unseen", "audio_statistics", "audio_used"]


def cell(values: pd.Series) -> str:
    mean, _, low, high = mean_ci(values * 100)
    return f"{mean:.1f} ±{(high - low) / 2:.1f}"


def main() -> None:
    now = pd.read_parquet(HERE / "transfer.parquet")
    study = pd.read_parquet(STUDY / "transfer.parquet")
    leave_one_out = pd.read_parquet(STUDY / "leave_one_out.parquet")
    print("## unseen and used against the study's own runs (the same UAR, run for run)\n")
    print(identical_runs(study, now[now["protocol"] != "audio_statistics"]).to_markdown())
    print("\n## Mean UAR (%) over EMOVO and URDU, EMO-DB + SAVEE trained, 3 seeds; leave one out beside\n")
    means = now.pivot_table(index="model", columns="protocol", values="uar", aggfunc="mean")[WAYS] * 100
    means["leave_one_out"] = leave_one_out.groupby("model")["uar"].mean() * 100
    print(means.round(1).to_markdown())
    print("\n## Per test corpus: mean UAR (%) ± 95% half-width over the seeds\n")
    per_cell = now.groupby(["target", "model", "protocol"])["uar"].apply(cell).unstack("protocol")[WAYS]
    print(per_cell.to_markdown())
    print("\n## dbn_best minus svm per cell (points, means over the seeds)\n")
    cells = now.pivot_table(index=["target", "protocol"], columns="model", values="uar", aggfunc="mean") * 100
    print((cells["dbn_best"] - cells["svm"]).unstack("protocol")[WAYS].round(1).to_markdown())
    print("\n## Leave one out with and without the left-out corpus' audio in dbn_best's pool (UAR %, ± 95%)\n")
    trainpool = pd.read_parquet(HERE / "leave_one_out_trainpool.parquet")
    both = pd.concat([leave_one_out[leave_one_out["model"].isin(["dbn_best", "svm"])], trainpool])
    per_target = both.groupby(["target", "model"])["uar"].apply(cell).unstack("model")
    per_target.loc["mean"] = (both.groupby("model")["uar"].mean() * 100).round(1).astype(str)
    print(per_target.to_markdown())


if __name__ == "__main__":
    main()
